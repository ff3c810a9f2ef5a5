//! Choosing taps by name or glob (`blocks.*.mlp.act`, `layer?.0`).

use crate::error::{Error, Result};
use crate::model::TapInfo;

/// `*` matches any run of characters (dots included), `?` any one character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matcher with one backtrack point for the last `*`.
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Indices (in forward order) of the taps matching any of `patterns` (comma-separated lists
/// are split); all taps when `patterns` is empty. A pattern that matches nothing is an error
/// naming it and listing what exists.
pub fn select_taps(taps: &[TapInfo], patterns: &[String]) -> Result<Vec<usize>> {
    let patterns: Vec<&str> = patterns
        .iter()
        .flat_map(|p| p.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if patterns.is_empty() {
        return Ok((0..taps.len()).collect());
    }
    for p in &patterns {
        if !taps.iter().any(|t| glob_match(p, &t.name)) {
            let names: Vec<&str> = taps.iter().map(|t| t.name.as_str()).collect();
            let shown = if names.len() > 12 {
                format!(
                    "{} ... {} ({} taps; `sparsescope inspect` lists them)",
                    names[..6].join(", "),
                    names[names.len() - 3..].join(", "),
                    names.len()
                )
            } else {
                names.join(", ")
            };
            return Err(Error::Usage(format!(
                "tap '{p}' does not exist in this model; taps are: {shown}"
            )));
        }
    }
    Ok((0..taps.len())
        .filter(|&i| patterns.iter().any(|p| glob_match(p, &taps[i].name)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("blocks.*.mlp.act", "blocks.11.mlp.act"));
        assert!(!glob_match("blocks.*.mlp.act", "blocks.11"));
        assert!(glob_match("blocks.?", "blocks.3"));
        assert!(!glob_match("blocks.?", "blocks.10"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("layer1.0", "layer1.0"));
        assert!(!glob_match("layer1.0", "layer1.0.act1"));
    }
}
