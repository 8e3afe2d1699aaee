//! IAM wildcard matching (`*` = any run of characters, `?` = exactly one) over precompiled patterns.
//!
//! Patterns are sequences of [`Elem`] rather than strings so that text substituted from a policy
//! variable (or an escape such as `${*}`) stays literal even when it contains `*` or `?`.

/// One element of a compiled wildcard pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elem {
    Char(char),
    /// `*`: any sequence of characters, including the empty one and including `:` and `/`.
    Star,
    /// `?`: exactly one character.
    One,
}

/// Compiles policy text in which `*` and `?` are wildcards.
pub(crate) fn compile(text: &str) -> Vec<Elem> {
    let mut out = Vec::with_capacity(text.len());
    push_wild(&mut out, text);
    out
}

/// Appends `text` with `*` and `?` as wildcards.
pub(crate) fn push_wild(out: &mut Vec<Elem>, text: &str) {
    out.extend(text.chars().map(|c| match c {
        '*' => Elem::Star,
        '?' => Elem::One,
        c => Elem::Char(c),
    }));
}

/// Appends `text` verbatim: every character only matches itself.
pub(crate) fn push_literal(out: &mut Vec<Elem>, text: &str) {
    out.extend(text.chars().map(Elem::Char));
}

/// Whether `text` matches `pattern` in full. `fold_case` compares characters case-insensitively
/// (IAM does so for action names only).
///
/// This is the classic linear-space backtracking matcher: on a mismatch it retries from the most
/// recent `*`, consuming one more character. Worst case is O(pattern × text), which is fine for
/// policy-sized inputs and never recurses, so hostile patterns cannot blow the stack.
pub(crate) fn matches(pattern: &[Elem], text: &str, fold_case: bool) -> bool {
    // Equal characters inline; case folding (actions only) out of line.
    let eq = |a: char, b: char| a == b || (fold_case && eq_folded(a, b));
    // ARNs, actions and header values are nearly always ASCII: then every character is one
    // byte and needs no decoding.
    let ascii = text.is_ascii();
    let char_at = |t: usize| {
        if ascii {
            char::from(text.as_bytes()[t])
        } else {
            decode_at(text, t)
        }
    };
    let mut p = 0;
    let mut t = 0;
    // (pattern index just after the last `*`, text index that `*` has consumed up to)
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        let c = char_at(t);
        if let Some(elem) = pattern.get(p) {
            match *elem {
                Elem::Star => {
                    // A final `*` takes whatever text is left (`*`, `arn:…/static*`).
                    if p + 1 == pattern.len() {
                        return true;
                    }
                    backtrack = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                Elem::One => {
                    p += 1;
                    t += c.len_utf8();
                    continue;
                }
                Elem::Char(pc) if eq(pc, c) => {
                    p += 1;
                    t += c.len_utf8();
                    continue;
                }
                Elem::Char(_) => {}
            }
        }
        match backtrack {
            Some((after_star, consumed)) => {
                let skipped = char_at(consumed);
                let consumed = consumed + skipped.len_utf8();
                backtrack = Some((after_star, consumed));
                p = after_star;
                t = consumed;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|e| *e == Elem::Star)
}

/// The character at byte `t` of non-ASCII text.
#[cold]
fn decode_at(text: &str, t: usize) -> char {
    text[t..].chars().next().expect("t is on a char boundary")
}

/// Whether two characters are equal ignoring case.
#[inline(never)]
fn eq_folded(a: char, b: char) -> bool {
    a.eq_ignore_ascii_case(&b)
        || (!a.is_ascii() || !b.is_ascii()) && a.to_lowercase().eq(b.to_lowercase())
}

/// Whether two strings are equal ignoring case, without allocating.
pub(crate) fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool, bool)] = &[
            ("*", "", false, true),
            ("*", "anything/at:all", false, true),
            ("", "", false, true),
            ("", "a", false, false),
            ("a", "", false, false),
            ("abc", "abc", false, true),
            ("abc", "abd", false, false),
            ("a?c", "abc", false, true),
            ("a?c", "ac", false, false),
            ("a*c", "ac", false, true),
            ("a*c", "abbbbc", false, true),
            ("a*c", "abbbbd", false, false),
            ("*/rates*", "svc/rates", false, true),
            ("*/rates*", "svc/rates/today", false, true),
            ("*/rates*", "svc/rate", false, false),
            ("a*b*c", "aXbYbZc", false, true),
            ("a*b*c", "aXbYbZ", false, false),
            ("**", "x", false, true),
            ("*", "", false, true),
            ("a*", "a", false, true),
            ("a*", "b", false, false),
            ("*b*", "xxbyy", false, true),
            ("*b*", "xxyy", false, false),
            ("?", "é", false, true),
            (
                "vpc-lattice-svcs:invoke",
                "vpc-lattice-svcs:Invoke",
                true,
                true,
            ),
            (
                "vpc-lattice-svcs:invoke",
                "vpc-lattice-svcs:Invoke",
                false,
                false,
            ),
            ("VPC-LATTICE-SVCS:*", "vpc-lattice-svcs:Connect", true, true),
            ("É*", "é", true, true),
        ];
        for &(pattern, text, fold, want) in cases {
            assert_eq!(
                matches(&compile(pattern), text, fold),
                want,
                "pattern {pattern:?} text {text:?} fold {fold}"
            );
        }
    }

    #[test]
    fn literal_wildcards_only_match_themselves() {
        let mut p = Vec::new();
        push_literal(&mut p, "a*");
        assert!(matches(&p, "a*", false));
        assert!(!matches(&p, "ab", false));
    }

    #[test]
    fn pathological_pattern_terminates() {
        // Exponential for a naive recursive matcher; linear backtracking keeps it quick.
        let pattern = compile(&("a*".repeat(50) + "b"));
        assert!(!matches(&pattern, &"a".repeat(500), false));
        assert!(matches(&pattern, &("a".repeat(500) + "b"), false));
    }

    #[test]
    fn ignore_case() {
        assert!(eq_ignore_case("Anonymous", "anonymous"));
        assert!(eq_ignore_case("ÉTÉ", "été"));
        assert!(!eq_ignore_case("a", "b"));
    }
}
