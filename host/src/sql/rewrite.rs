//! Rewrites portable plugin SQL for PostgreSQL: `?` placeholders become `$1, $2, ...` and
//! backtick-quoted identifiers become double-quoted ones. String literals, quoted
//! identifiers and comments are copied untouched.
//!
//! Written by hand: sqlx has no placeholder translation, and a full SQL parser
//! (`sqlparser`) would reject dialect features the database itself accepts.

pub fn for_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut placeholders = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '?' => {
                placeholders += 1;
                out.push('$');
                out.push_str(&placeholders.to_string());
            }
            '`' => {
                out.push('"');
                for c in chars.by_ref() {
                    if c == '`' {
                        break;
                    }
                    out.push(c);
                }
                out.push('"');
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
                let mut previous = '\0';
                for inner in chars.by_ref() {
                    out.push(inner);
                    if previous == '*' && inner == '/' {
                        break;
                    }
                    previous = inner;
                }
            }
            _ => out.push(c),
        }
    }
    out
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
    fn literals_and_comments_are_untouched() {
        assert_eq!(
            for_postgres("SELECT '?', 'it''s ?', \"a?\" -- why?\n, ? /* `x` ? */, ?"),
            "SELECT '?', 'it''s ?', \"a?\" -- why?\n, $1 /* `x` ? */, $2"
        );
    }
}
