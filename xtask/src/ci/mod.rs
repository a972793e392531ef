//! CI integration: the plan a CI system expands into jobs (`plan`), merging the jobs' results (`merge`), and the CI files kforge generates (`pipelines`).

pub mod merge;
pub mod pipelines;
pub mod plan;
