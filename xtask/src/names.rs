//! Ids that become paths (kernel, toolchain and driver ids) are checked to be plain names first.

use std::path::Path;

use anyhow::Result;

use crate::error;

/// Whether `id` is a plain name: `[A-Za-z0-9][A-Za-z0-9._-]*`, no `..`.
pub fn is_plain(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|first| first.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !id.contains("..")
}

/// Refuses an id that is not a plain name, naming the file that gave it.
pub fn check(kind: &str, id: &str, file: &Path) -> Result<()> {
    if is_plain(id) {
        return Ok(());
    }
    Err(error::user_hint(
        format!("{}: {kind} id `{id}` is not a plain name (it becomes a path)", file.display()),
        "use letters, digits, `.`, `_` and `-`, starting with a letter or digit, without `..` or `/`",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_pass() {
        for id in ["7.2", "debian-7.2", "sid_gcc", "rustup-1.97", "a"] {
            assert!(is_plain(id), "{id}");
        }
        for id in ["", "..", "../x", "a/b", "/abs", ".hidden", "-flag", "a..b", "a b", "a\nb", "ü"] {
            assert!(!is_plain(id), "{id}");
        }
        let message = format!("{}", check("kernel", "../../etc", Path::new("/repo/kforge.toml")).unwrap_err());
        assert_eq!(message, "/repo/kforge.toml: kernel id `../../etc` is not a plain name (it becomes a path)");
    }
}
