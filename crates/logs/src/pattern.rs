//! CloudWatch Logs filter patterns, the subset FilterLogEvents accepts here: parsed once per
//! request, then matched against each event's message.
//!
//! * empty (or only spaces): every event;
//! * terms: `ERROR`, `"two words"` — every term must occur (case-sensitive); `?a ?b` — any of
//!   the `?` terms; `-x` — `x` must not occur;
//! * JSON: `{ SELECTOR OP VALUE }` joined by `&&` and `||` (`&&` binds tighter), with
//!   parentheses. `SELECTOR` is `$.a.b` or `$.a[0]`; `OP` one of `= != < <= > >=`; `VALUE` a
//!   number (compared numerically with a numeric field), a `"quoted"` or bare string (`=`/`!=`
//!   only, `*` a wildcard), `NULL` (`= NULL`: the field is JSON null), `TRUE`/`FALSE`; also
//!   `SELECTOR NOT EXISTS` and `SELECTOR IS NULL`. An event whose message is not a JSON object
//!   matches no JSON pattern.
//!
//! A pattern is at most [`MAX_PATTERN_LEN`] bytes and [`MAX_DEPTH`] parentheses deep.

use serde_json::Value;

/// CloudWatch's limit on `filterPattern`.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Nesting bound for parenthesised JSON expressions.
pub const MAX_DEPTH: usize = 16;

/// A parsed filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    All,
    Terms {
        all: Vec<String>,
        any: Vec<String>,
        none: Vec<String>,
    },
    Json(Expr),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp {
        path: Vec<Step>,
        op: Op,
        value: Literal,
    },
    NotExists(Vec<Step>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Number(f64),
    Str(String),
    Bool(bool),
    Null,
}

/// Why a pattern does not parse (FilterLogEvents answers InvalidParameterException).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid filter pattern: {0}")]
pub struct PatternError(pub String);

fn err<T>(m: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError(m.into()))
}

/// Parses `text`.
pub fn parse(text: &str) -> Result<Pattern, PatternError> {
    if text.len() > MAX_PATTERN_LEN {
        return err(format!("longer than {MAX_PATTERN_LEN} characters"));
    }
    let t = text.trim();
    if t.is_empty() {
        return Ok(Pattern::All);
    }
    if let Some(inner) = t.strip_prefix('{') {
        let Some(inner) = inner.strip_suffix('}') else {
            return err("a JSON pattern must end with '}'");
        };
        let mut p = Parser {
            s: inner.as_bytes(),
            i: 0,
            depth: 0,
        };
        let e = p.or()?;
        p.ws();
        if p.i != p.s.len() {
            return err(format!("unexpected text at offset {}", p.i + 1));
        }
        return Ok(Pattern::Json(e));
    }
    terms(t)
}

fn terms(t: &str) -> Result<Pattern, PatternError> {
    let (mut all, mut any, mut none) = (Vec::new(), Vec::new(), Vec::new());
    let mut rest = t;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let (kind, body) = match rest.as_bytes()[0] {
            b'?' => (1, &rest[1..]),
            b'-' => (2, &rest[1..]),
            _ => (0, rest),
        };
        let (term, after) = if let Some(q) = body.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => return err("unterminated quoted term"),
            }
        } else {
            let end = body.find(char::is_whitespace).unwrap_or(body.len());
            (&body[..end], &body[end..])
        };
        if term.is_empty() {
            return err("empty term");
        }
        match kind {
            1 => any.push(term.to_string()),
            2 => none.push(term.to_string()),
            _ => all.push(term.to_string()),
        }
        rest = after;
    }
    Ok(Pattern::Terms { all, any, none })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(tok.as_bytes()) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, PatternError> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, PatternError> {
        let mut left = self.primary()?;
        while self.eat("&&") {
            left = Expr::And(Box::new(left), Box::new(self.primary()?));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, PatternError> {
        if self.eat("(") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return err(format!("more than {MAX_DEPTH} nested parentheses"));
            }
            let e = self.or()?;
            if !self.eat(")") {
                return err("missing ')'");
            }
            self.depth -= 1;
            return Ok(e);
        }
        let path = self.selector()?;
        if self.eat_word("NOT") {
            if !self.eat_word("EXISTS") {
                return err("expected EXISTS after NOT");
            }
            return Ok(Expr::NotExists(path));
        }
        if self.eat_word("IS") {
            if !self.eat_word("NULL") {
                return err("expected NULL after IS");
            }
            return Ok(Expr::Cmp {
                path,
                op: Op::Eq,
                value: Literal::Null,
            });
        }
        let op = self.op()?;
        let value = self.literal()?;
        if matches!(value, Literal::Str(_) | Literal::Bool(_) | Literal::Null)
            && !matches!(op, Op::Eq | Op::Ne)
        {
            return err("only = and != compare strings, booleans and NULL");
        }
        Ok(Expr::Cmp { path, op, value })
    }

    fn eat_word(&mut self, w: &str) -> bool {
        self.ws();
        let end = self.i + w.len();
        if self.s.len() >= end
            && self.s[self.i..end].eq_ignore_ascii_case(w.as_bytes())
            && self
                .s
                .get(end)
                .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'_')
        {
            self.i = end;
            true
        } else {
            false
        }
    }

    fn selector(&mut self) -> Result<Vec<Step>, PatternError> {
        if !self.eat("$") {
            return err(format!(
                "expected a selector ($.field) at offset {}",
                self.i + 1
            ));
        }
        let mut path = Vec::new();
        loop {
            match self.s.get(self.i) {
                Some(b'.') => {
                    self.i += 1;
                    let start = self.i;
                    while self.s.get(self.i).is_some_and(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'@')
                    }) {
                        self.i += 1;
                    }
                    if start == self.i {
                        return err("empty field name in selector");
                    }
                    path.push(Step::Key(
                        String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
                    ));
                }
                Some(b'[') => {
                    self.i += 1;
                    let start = self.i;
                    while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                        self.i += 1;
                    }
                    let n = std::str::from_utf8(&self.s[start..self.i])
                        .ok()
                        .and_then(|d| d.parse().ok());
                    match (n, self.s.get(self.i)) {
                        (Some(n), Some(b']')) => {
                            self.i += 1;
                            path.push(Step::Index(n));
                        }
                        _ => return err("malformed array index in selector"),
                    }
                }
                _ => break,
            }
        }
        if path.is_empty() {
            return err("a selector names a field: $.field");
        }
        Ok(path)
    }

    fn op(&mut self) -> Result<Op, PatternError> {
        for (tok, op) in [
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            if self.eat(tok) {
                return Ok(op);
            }
        }
        err(format!(
            "expected a comparison operator at offset {}",
            self.i + 1
        ))
    }

    fn literal(&mut self) -> Result<Literal, PatternError> {
        self.ws();
        if self.s.get(self.i) == Some(&b'"') {
            self.i += 1;
            let start = self.i;
            while self.s.get(self.i).is_some_and(|b| *b != b'"') {
                self.i += 1;
            }
            if self.i >= self.s.len() {
                return err("unterminated string");
            }
            let v = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
            self.i += 1;
            return Ok(Literal::Str(v));
        }
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|b| !b.is_ascii_whitespace() && !matches!(b, b')' | b'&' | b'|'))
        {
            self.i += 1;
        }
        let word = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
        if word.is_empty() || word.starts_with(['=', '!', '<', '>', '(']) {
            return err("expected a value");
        }
        if word.eq_ignore_ascii_case("NULL") {
            return Ok(Literal::Null);
        }
        if word.eq_ignore_ascii_case("TRUE") {
            return Ok(Literal::Bool(true));
        }
        if word.eq_ignore_ascii_case("FALSE") {
            return Ok(Literal::Bool(false));
        }
        if let Ok(n) = word.parse::<f64>()
            && n.is_finite()
        {
            return Ok(Literal::Number(n));
        }
        Ok(Literal::Str(word.to_string()))
    }
}

impl Pattern {
    /// Whether `message` matches. A JSON pattern parses the message (once).
    pub fn matches(&self, message: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Terms { all, any, none } => {
                all.iter().all(|t| message.contains(t.as_str()))
                    && (any.is_empty() || any.iter().any(|t| message.contains(t.as_str())))
                    && !none.iter().any(|t| message.contains(t.as_str()))
            }
            Pattern::Json(e) => match serde_json::from_str::<Value>(message) {
                Ok(v @ Value::Object(_)) => e.eval(&v),
                _ => false,
            },
        }
    }
}

fn select<'v>(v: &'v Value, path: &[Step]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, step| match step {
        Step::Key(k) => v.get(k),
        Step::Index(i) => v.get(*i),
    })
}

/// `*` matches any run of characters; everything else literally.
fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(at) => rest = &rest[at + mid.len()..],
            None => return false,
        }
    }
    true
}

impl Expr {
    fn eval(&self, v: &Value) -> bool {
        match self {
            Expr::And(a, b) => a.eval(v) && b.eval(v),
            Expr::Or(a, b) => a.eval(v) || b.eval(v),
            Expr::NotExists(path) => select(v, path).is_none(),
            Expr::Cmp { path, op, value } => {
                let Some(field) = select(v, path) else {
                    return false;
                };
                let equal = match (value, field) {
                    (Literal::Number(n), Value::Number(f)) => {
                        let Some(f) = f.as_f64() else { return false };
                        return match op {
                            Op::Eq => f == *n,
                            Op::Ne => f != *n,
                            Op::Lt => f < *n,
                            Op::Le => f <= *n,
                            Op::Gt => f > *n,
                            Op::Ge => f >= *n,
                        };
                    }
                    (Literal::Number(_), _) => return *op == Op::Ne,
                    (Literal::Str(s), Value::String(f)) => wildcard(s, f),
                    (Literal::Str(s), Value::Number(f)) => wildcard(s, &f.to_string()),
                    (Literal::Str(_), _) => false,
                    (Literal::Bool(b), Value::Bool(f)) => b == f,
                    (Literal::Bool(_), _) => false,
                    (Literal::Null, f) => f.is_null(),
                };
                match op {
                    Op::Eq => equal,
                    _ => !equal,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REC: &str = r#"{"responseCode":404,"requestPath":"/missing","protocol":"HTTP/2","failureReason":"-","tags":{"team":"a"},"list":[1,"x"],"nothing":null,"ok":true}"#;

    #[test]
    fn matching_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("", REC, true),
            ("   ", "anything", true),
            ("{ $.responseCode = 404 }", REC, true),
            ("{ $.responseCode = 503 }", REC, false),
            ("{ $.responseCode != 503 }", REC, true),
            (
                "{ $.responseCode >= 400 && $.responseCode < 500 }",
                REC,
                true,
            ),
            ("{ $.responseCode > 404 }", REC, false),
            ("{ $.responseCode <= 404 }", REC, true),
            (
                "{ $.responseCode = 503 || $.protocol = \"HTTP/2\" }",
                REC,
                true,
            ),
            ("{ $.protocol = \"HTTP/*\" }", REC, true),
            ("{ $.protocol = \"*1.1\" }", REC, false),
            ("{ $.requestPath = \"/mis*ing\" }", REC, true),
            ("{ $.requestPath = /missing }", REC, true),
            ("{ $.tags.team = \"a\" }", REC, true),
            ("{ $.list[0] = 1 }", REC, true),
            ("{ $.list[1] = \"x\" }", REC, true),
            ("{ $.list[2] = \"x\" }", REC, false),
            ("{ $.nothing IS NULL }", REC, true),
            ("{ $.nothing = NULL }", REC, true),
            ("{ $.absent NOT EXISTS }", REC, true),
            ("{ $.responseCode NOT EXISTS }", REC, false),
            ("{ $.ok = TRUE }", REC, true),
            ("{ $.ok = false }", REC, false),
            (
                "{ ($.responseCode = 1 || $.responseCode = 404) && $.ok = true }",
                REC,
                true,
            ),
            (
                "{ $.responseCode = 1 || $.responseCode = 2 && $.ok = true }",
                REC,
                false,
            ),
            ("{ $.responseCode = \"404\" }", REC, true),
            ("{ $.requestPath = 404 }", REC, false),
            ("{ $.responseCode = 404 }", "not json", false),
            ("{ $.responseCode = 404 }", "[1]", false),
            ("missing", REC, true),
            ("missing HTTP/2", REC, true),
            ("missing HTTP/3", REC, false),
            ("\"\\\"requestPath\\\"\"", "x", false),
            ("?HTTP/3 ?missing", REC, true),
            ("?HTTP/3 ?nope", REC, false),
            ("missing -HTTP/2", REC, false),
            ("\"HTTP/2\\\",\"", "x", false),
            ("ERROR", "error", false),
        ];
        for (pattern, message, want) in cases {
            let p = parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            assert_eq!(p.matches(message), *want, "{pattern} on {message}");
        }
    }

    #[test]
    fn rejected_table() {
        let long = "a".repeat(MAX_PATTERN_LEN + 1);
        let deep = format!("{{ {}$.a = 1{} }}", "(".repeat(20), ")".repeat(20));
        for pattern in [
            "{ $.a = 1",
            "{ }",
            "{ a = 1 }",
            "{ $. = 1 }",
            "{ $.a[x] = 1 }",
            "{ $.a == }",
            "{ $.a = }",
            "{ $.a > \"x\" }",
            "{ $.a = 1 && }",
            "{ ($.a = 1 }",
            "{ $.a = 1 } trailing",
            "{ $.a NOT THERE }",
            "\"unterminated",
            long.as_str(),
            deep.as_str(),
        ] {
            assert!(parse(pattern).is_err(), "{pattern} should not parse");
        }
    }

    #[test]
    fn wildcard_table() {
        for (p, t, want) in [
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a*c", "abc", true),
            ("a*c", "ac", true),
            ("a*b*c", "axbyc", true),
            ("a*b*c", "acb", false),
            ("abc", "abc", true),
            ("ab*ba", "aba", false),
            ("*", "", true),
        ] {
            assert_eq!(wildcard(p, t), want, "{p} {t}");
        }
    }
}
