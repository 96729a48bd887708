//! Scopes: which cases a node may hold and write.
//!
//! A case belongs to the scope of the node that opened it, which its case number names
//! (`<division code>-<date>-<seq>`). A node may hold a scope when the scope's code starts with the node's
//! own code: a village only its own, a township its own and its villages', the county hub every scope.
//! The peer's code always comes from its certificate.

/// The scope (division code) a case number belongs to.
pub fn scope_of(case_no: &str) -> Option<&str> {
    crate::case_no::division_code(case_no)
}

/// Whether a node with `node_code` may hold cases of `scope`.
pub fn may_hold(node_code: &str, scope: &str) -> bool {
    !node_code.is_empty() && scope.starts_with(node_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn villages_hold_their_own_townships_their_villages_the_hub_everything() {
        let village = "420222100201";
        let township = "420222100";
        assert!(may_hold(village, village));
        assert!(!may_hold(village, "420222100202"));
        assert!(may_hold(township, village));
        assert!(!may_hold(township, "420222101201"));
        assert!(may_hold("420222", village));
        assert_eq!(scope_of("420222100201-20261127-0001"), Some(village));
        assert_eq!(scope_of("x-1-2"), None);
        assert_eq!(scope_of(""), None);
    }
}
