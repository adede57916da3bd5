//! From captured statements to a pgbench script: the request's ids become expressions of
//! `:i`, every other value a bound `-D` variable, the connection's options `PGOPTIONS`.

use anyhow::{bail, Context};

use super::params::type_name;
use super::*;

/// A value of one request that stands for "this order", and how pgbench computes it.
pub struct Key {
    pub value: String,
    pub token: &'static str,
    /// SQL computing the value from `:i`, as text.
    pub text_sql: String,
    /// SQL computing the value from `:i` with its own type (e.g. a uuid).
    pub typed_sql: String,
}

/// A pgbench script with its variables and connection options.
#[derive(Debug, Clone, Default)]
pub struct Mirror {
    pub script: String,
    pub defines: Vec<(String, String)>,
    /// `-c name=value` options for `PGOPTIONS`: the storefront's connection options and any
    /// `SET LOCAL` of its transactions (pgbench cannot prepare a multi-statement string).
    pub options: Vec<String>,
    /// One line per statement, shortened, for the report.
    pub summary: Vec<String>,
}

/// Writes the pgbench twin of `stmts`: `header` (its `\set` lines) computes `:i`.
pub fn script(
    stmts: &[Stmt],
    header: &str,
    keys: &[Key],
    options: Option<&str>,
) -> anyhow::Result<Mirror> {
    let mut m = Mirror {
        script: format!("{}\n", header.trim_end()),
        ..Mirror::default()
    };
    if let Some(o) = options {
        m.options.push(o.trim().to_owned());
    }
    let mut vars = 0;
    for s in stmts {
        let sql = one_line(&s.sql);
        if s.simple {
            for part in sql.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                if let Some(option) = set_local(part) {
                    m.options.push(option?);
                    continue;
                }
                m.script.push_str(part);
                m.script.push_str(";\n");
                m.summary.push(shorten(part));
            }
            continue;
        }
        check_colons(&sql)?;
        let mut out = String::new();
        let mut chars = sql.char_indices().peekable();
        while let Some((at, ch)) = chars.next() {
            if ch != '$' {
                out.push(ch);
                continue;
            }
            let mut end = at + 1;
            while let Some((k, c)) = chars.peek().copied() {
                if c.is_ascii_digit() {
                    end = k + 1;
                    chars.next();
                } else {
                    break;
                }
            }
            let Ok(n) = sql[at + 1..end].parse::<usize>() else {
                out.push('$');
                continue;
            };
            let p = s
                .params
                .get(n - 1)
                .with_context(|| format!("${n} unbound in {sql}"))?;
            if let Some(why) = &p.unreadable {
                bail!("${n} of `{sql}`: {why}");
            }
            out.push_str(&render(p, keys, &mut m.defines, &mut vars));
        }
        m.summary.push(shorten(&sql));
        m.script.push_str(&out);
        m.script.push_str(";\n");
    }
    m.options = dedup_options(&m.options);
    Ok(m)
}

/// `-c name=value` options, each name once (the last value wins, as in Postgres).
fn dedup_options(opts: &[String]) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for o in opts {
        let words: Vec<&str> = o.split_whitespace().collect();
        let mut k = 0;
        while k < words.len() {
            let setting = match words[k] {
                "-c" => {
                    k += 1;
                    words.get(k).copied()
                }
                w => w.strip_prefix("-c").or(w.strip_prefix("--")),
            };
            k += 1;
            let Some((name, value)) = setting.and_then(|s| s.split_once('=')) else {
                continue;
            };
            out.retain(|(n, _)| n != name);
            out.push((name.to_owned(), value.to_owned()));
        }
    }
    out.into_iter()
        .map(|(n, v)| format!("-c {n}={v}"))
        .collect()
}

/// `SET LOCAL name = value` (or `TO value`) as a `-c name=value` connection option.
fn set_local(stmt: &str) -> Option<anyhow::Result<String>> {
    let head = stmt.get(..10)?;
    if !head.eq_ignore_ascii_case("set local ") {
        return None;
    }
    let rest = stmt[10..].trim();
    let parsed = match rest.split_once('=') {
        Some((n, v)) => Some((n.trim(), v.trim())),
        None => {
            let mut w = rest.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some(n), Some(to), Some(v)) if to.eq_ignore_ascii_case("to") => Some((n, v)),
                _ => None,
            }
        }
    };
    Some(
        parsed
            .map(|(n, v)| format!("-c {n}={}", v.trim_matches('\'')))
            .with_context(|| format!("cannot read {stmt:?}")),
    )
}

fn render(
    p: &Param,
    keys: &[Key],
    defines: &mut Vec<(String, String)>,
    vars: &mut usize,
) -> String {
    let cast = type_name(p.oid)
        .map(|t| format!("::{t}"))
        .unwrap_or_default();
    let Some(v) = &p.value else {
        return format!("(NULL{cast})");
    };
    if let Some(k) = keys.iter().find(|k| &k.value == v) {
        return format!("({}{cast})", k.typed_sql);
    }
    let used: Vec<&Key> = keys.iter().filter(|k| v.contains(&k.value)).collect();
    *vars += 1;
    let name = format!("v{vars}");
    if used.is_empty() {
        defines.push((name.clone(), v.clone()));
        return format!("(:{name}{cast})");
    }
    let mut template = v.clone();
    let mut expr = format!(":{name}");
    for k in used {
        template = template.replace(&k.value, k.token);
        expr = format!("replace({expr}, '{}', {})", k.token, k.text_sql);
    }
    defines.push((name, template));
    format!("({expr}{cast})")
}

/// pgbench reads `:name` anywhere in a command as a variable; the storefront's SQL must have
/// none outside casts (`::type`).
fn check_colons(sql: &str) -> anyhow::Result<()> {
    let b = sql.as_bytes();
    for k in 0..b.len() {
        let prev_colon = k > 0 && b[k - 1] == b':';
        let next = b.get(k + 1).copied().unwrap_or(b' ');
        if b[k] == b':'
            && !prev_colon
            && next != b':'
            && (next.is_ascii_alphabetic() || next == b'_')
        {
            bail!(
                "pgbench would read `:{}` as a variable in: {sql}",
                next as char
            );
        }
    }
    Ok(())
}

/// One shortened line per statement (simple-protocol strings split at `;`).
pub fn summarize(stmts: &[Stmt]) -> Vec<String> {
    stmts
        .iter()
        .flat_map(|s| {
            let sql = one_line(&s.sql);
            if s.simple {
                sql.split(';')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(shorten)
                    .collect::<Vec<_>>()
            } else {
                vec![shorten(&sql)]
            }
        })
        .collect()
}

/// `sql` on one line, as pgbench reads a statement: its `--` comments dropped first, or the
/// first would swallow the rest of the statement (and its `;`). Hand-written: a comment is
/// `--` outside a quoted string or name, to the line's end.
fn one_line(sql: &str) -> String {
    let mut code = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quote = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '-' && chars.peek() == Some(&'-') => {
                for skipped in chars.by_ref() {
                    if skipped == '\n' {
                        break;
                    }
                }
                code.push('\n');
                continue;
            }
            None => {}
        }
        code.push(c);
    }
    code.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn shorten(sql: &str) -> String {
    let s: String = sql.chars().take(90).collect();
    if s.len() < sql.len() {
        format!("{s}…")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_dropped_before_a_statement_is_put_on_one_line() {
        let sql = "UPDATE t SET a = '--kept', -- why\n  b = \"x--y\" -- and why\n WHERE id = $1";
        assert_eq!(
            one_line(sql),
            "UPDATE t SET a = '--kept', b = \"x--y\" WHERE id = $1"
        );
    }

    #[test]
    fn statements_become_a_pgbench_script() {
        let keys = [Key {
            value: "e1".into(),
            token: "@EVT@",
            text_sql: "('e' || :i)".into(),
            typed_sql: "('e' || :i)".into(),
        }];
        let stmts = [
            Stmt {
                sql: "BEGIN; SET LOCAL lock_timeout = '2000ms'".into(),
                params: vec![],
                simple: true,
                options: None,
            },
            Stmt {
                sql: "INSERT INTO t (a, b, c)\n VALUES ($1, $2::text::jsonb, $3)".into(),
                params: vec![
                    Param {
                        oid: 25,
                        value: Some("e1".into()),
                        unreadable: None,
                    },
                    Param {
                        oid: 25,
                        value: Some("{\"id\":\"e1\"}".into()),
                        unreadable: None,
                    },
                    Param {
                        oid: 1184,
                        value: None,
                        unreadable: None,
                    },
                ],
                simple: false,
                options: None,
            },
        ];
        let m = script(&stmts, "\\set i 1", &keys, Some("-c a=b")).unwrap_or_default();
        assert_eq!(m.options, ["-c a=b", "-c lock_timeout=2000ms"]);
        assert!(m.script.contains("BEGIN;\n"), "{}", m.script);
        assert!(
            m.script.contains("VALUES ((('e' || :i)::text), (replace(:v1, '@EVT@', ('e' || :i))::text)::text::jsonb, (NULL::timestamptz));"),
            "{}",
            m.script
        );
        assert_eq!(
            m.defines,
            [("v1".to_owned(), "{\"id\":\"@EVT@\"}".to_owned())]
        );
    }
}
