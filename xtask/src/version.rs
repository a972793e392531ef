//! Comparing dotted version strings ("7.2.13" vs "7.2", "7.3-rc7").

use std::cmp::Ordering;

/// Numeric components of a version: "7.3~rc7-1" -> [7, 3].
pub fn components(version: &str) -> Vec<u64> {
    version
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .unwrap_or_default()
        .split('.')
        .filter_map(|part| part.parse().ok())
        .collect()
}

/// Compares by numeric components; missing components count as 0, so "7.2" == "7.2.0" < "7.2.13".
pub fn compare(left: &str, right: &str) -> Ordering {
    let (left, right) = (components(left), components(right));
    let length = left.len().max(right.len());
    for index in 0..length {
        let ordering = left.get(index).unwrap_or(&0).cmp(right.get(index).unwrap_or(&0));
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_numerically() {
        assert!(compare("7.2.13", "7.2").is_gt());
        assert!(compare("6.12.107", "7.2").is_lt());
        assert!(compare("7.10", "7.9").is_gt());
        assert!(compare("7.2", "7.2.0").is_eq());
        assert_eq!(components("7.3~rc7-1"), [7, 3]);
    }
}
