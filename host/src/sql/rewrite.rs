//! Rewrites portable plugin SQL for PostgreSQL: `?` placeholders become `$1, $2, ...` and
//! backtick-quoted identifiers become double-quoted ones (a `"` inside doubled, so it stays
//! inside). String literals (escape strings `E'...'` with their backslashes too, dollar-quoted
//! `$$...$$` and `$tag$...$tag$`), quoted identifiers and comments (nested, as PostgreSQL
//! nests them) are copied untouched.
//!
//! Written by hand: sqlx has no placeholder translation, and a full SQL parser
//! (`sqlparser`) would reject dialect features the database itself accepts.

pub fn for_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut placeholders = 0;
    let mut chars = sql.chars().peekable();
    // Whether the previous character continues an identifier (`name'` is no `E'` string).
    let mut in_word = false;
    while let Some(c) = chars.next() {
        let word_before =
            std::mem::replace(&mut in_word, c.is_alphanumeric() || c == '_' || c == '$');
        match c {
            '?' => {
                placeholders += 1;
                out.push('$');
                out.push_str(&placeholders.to_string());
            }
            '`' => {
                out.push('"');
                for c in chars.by_ref() {
                    match c {
                        '`' => break,
                        // Doubled, or it would close the identifier and let SQL out of it.
                        '"' => out.push_str("\"\""),
                        _ => out.push(c),
                    }
                }
                out.push('"');
            }
            '$' if !word_before => {
                copy_dollar_quoted(&mut chars, &mut out);
                in_word = false;
            }
            'E' | 'e' if !word_before && chars.peek() == Some(&'\'') => {
                // An escape string: a backslash escapes the next character, quote included.
                out.push(c);
                out.push(chars.next().expect("peeked"));
                while let Some(inner) = chars.next() {
                    out.push(inner);
                    match inner {
                        '\\' => out.extend(chars.next()),
                        '\'' if chars.peek() == Some(&'\'') => out.extend(chars.next()),
                        '\'' => break,
                        _ => {}
                    }
                }
                in_word = false;
            }
            '\'' | '"' => {
                out.push(c);
                // Copy up to the closing quote; a doubled quote is an escaped one and
                // simply reopens the literal on the next iteration.
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                out.push(c);
                out.push(chars.next().expect("peeked"));
                // `/*` opens, `*/` closes; the `*` of an opener never closes (`/*/`).
                let mut depth = 1;
                let mut previous = '\0';
                for inner in chars.by_ref() {
                    out.push(inner);
                    match (previous, inner) {
                        ('*', '/') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                            previous = '\0';
                        }
                        ('/', '*') => {
                            depth += 1;
                            previous = '\0';
                        }
                        _ => previous = inner,
                    }
                }
                in_word = false;
            }
            _ => out.push(c),
        }
    }
    out
}

/// After a `$` that starts no identifier: copies a dollar-quoted string (`$$...$$`,
/// `$tag$...$tag$`) whole, up to its closing delimiter; anything else (`$1`) is copied as
/// the lone `$` it starts with. A tag is an identifier without `$` (never a leading digit).
fn copy_dollar_quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    out.push('$');
    let mut ahead = chars.clone();
    let mut tag = String::new();
    let opens = loop {
        match ahead.next() {
            Some('$') => break true,
            Some(c) if c.is_alphabetic() || c == '_' || (c.is_ascii_digit() && !tag.is_empty()) => {
                tag.push(c)
            }
            _ => break false,
        }
    };
    if !opens {
        return;
    }
    let delimiter = format!("${tag}$");
    out.push_str(&delimiter[1..]);
    *chars = ahead;
    let body = out.len();
    for c in chars.by_ref() {
        out.push(c);
        if out[body..].ends_with(&delimiter) {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::for_postgres;

    #[test]
    fn placeholders_and_identifiers() {
        assert_eq!(
            for_postgres("SELECT `user_id` FROM `user` WHERE `user_name` = ? AND x > ?"),
            r#"SELECT "user_id" FROM "user" WHERE "user_name" = $1 AND x > $2"#
        );
    }

    #[test]
    fn escape_strings_and_nested_comments_are_untouched() {
        assert_eq!(
            for_postgres(r"SELECT E'it\'s ?', e'a''?\\', name'?' FROM t WHERE x = ?"),
            r"SELECT E'it\'s ?', e'a''?\\', name'?' FROM t WHERE x = $1"
        );
        assert_eq!(
            for_postgres("SELECT ? /*/ ? */, ? /* a /* ? */ ? */ , ?"),
            "SELECT $1 /*/ ? */, $2 /* a /* ? */ ? */ , $3"
        );
    }

    #[test]
    fn a_quote_inside_a_backtick_identifier_stays_inside() {
        assert_eq!(
            for_postgres("SELECT `a\"b` FROM t WHERE `x\" = 1; DROP TABLE t; --` = ?"),
            r#"SELECT "a""b" FROM t WHERE "x"" = 1; DROP TABLE t; --" = $1"#
        );
    }

    #[test]
    fn dollar_quoted_strings_are_untouched() {
        assert_eq!(
            for_postgres("SELECT $$it's ?$$, $q$ a $$ ? $q$, $_1$?$_1$, ? FROM t"),
            "SELECT $$it's ?$$, $q$ a $$ ? $q$, $_1$?$_1$, $1 FROM t"
        );
        // `$1` is no quote, `a$b` is an identifier, and an unclosed quote runs to the end.
        assert_eq!(
            for_postgres("SELECT $1, a$b$, ? , $x$ ? "),
            "SELECT $1, a$b$, $1 , $x$ ? "
        );
    }

    #[test]
    fn literals_and_comments_are_untouched() {
        assert_eq!(
            for_postgres("SELECT '?', 'it''s ?', \"a?\" -- why?\n, ? /* `x` ? */, ?"),
            "SELECT '?', 'it''s ?', \"a?\" -- why?\n, $1 /* `x` ? */, $2"
        );
    }
}
