//! A small POSIX-shell word splitter for knockd commands. knockd hands each command to
//! `/bin/sh -c` after replacing `%IP%`; this splitter follows exactly as much of the shell as
//! the commands worth recognising use (quotes, backslashes, `;` and `&&` lists, `>>`/`>`/`<`
//! redirects, `#` comments) and refuses everything whose meaning depends on run time
//! (expansions, pipes, background jobs, subshells), so a command is never mapped on a guess.

/// One simple command: its words and its redirections (`(">>", "/etc/hosts.allow")`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SimpleCommand {
    pub words: Vec<String>,
    pub redirects: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Op(&'static str),
}

fn tokenize(cmd: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = cmd.chars().peekable();
    let end_word = |word: &mut Option<String>, out: &mut Vec<Token>| {
        if let Some(w) = word.take() {
            out.push(Token::Word(w));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => end_word(&mut word, &mut out),
            '#' if word.is_none() => break,
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => w.push(ch),
                        None => return Err("an unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('$' | '`' | '"' | '\\')) => w.push(e),
                            Some('\n') => {}
                            Some(other) => {
                                w.push('\\');
                                w.push(other);
                            }
                            None => return Err("an unterminated double quote".into()),
                        },
                        Some('$') | Some('`') => {
                            return Err("a shell expansion (`$` or a backquote), whose value is known only at run time".into())
                        }
                        Some(ch) => w.push(ch),
                        None => return Err("an unterminated double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(ch) => word.get_or_insert_with(String::new).push(ch),
                None => return Err("a trailing backslash".into()),
            },
            '$' | '`' => {
                return Err(
                    "a shell expansion (`$` or a backquote), whose value is known only at run time"
                        .into(),
                )
            }
            ';' => {
                end_word(&mut word, &mut out);
                out.push(Token::Op(";"));
            }
            '&' => {
                end_word(&mut word, &mut out);
                if chars.peek() == Some(&'&') {
                    chars.next();
                    out.push(Token::Op("&&"));
                } else {
                    return Err("a background job (`&`)".into());
                }
            }
            '|' => return Err("a pipe or `||`".into()),
            '(' | ')' => return Err("a subshell (parentheses)".into()),
            '>' | '<' => {
                if word
                    .as_deref()
                    .is_some_and(|w| w.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Err("a redirection of a numbered descriptor".into());
                }
                end_word(&mut word, &mut out);
                if c == '>' && chars.peek() == Some(&'>') {
                    chars.next();
                    out.push(Token::Op(">>"));
                } else if c == '>' {
                    if chars.peek() == Some(&'&') || chars.peek() == Some(&'|') {
                        return Err("a redirection of a numbered descriptor".into());
                    }
                    out.push(Token::Op(">"));
                } else {
                    if chars.peek() == Some(&'<') {
                        return Err("a here-document".into());
                    }
                    out.push(Token::Op("<"));
                }
            }
            _ => word.get_or_insert_with(String::new).push(c),
        }
    }
    end_word(&mut word, &mut out);
    Ok(out)
}

/// Splits `cmd` into the simple commands it runs one after the other (`;` and `&&` lists).
pub(crate) fn split(cmd: &str) -> Result<Vec<SimpleCommand>, String> {
    let mut commands = Vec::new();
    let mut current = SimpleCommand::default();
    let mut tokens = tokenize(cmd)?.into_iter();
    while let Some(t) = tokens.next() {
        match t {
            Token::Word(w) => current.words.push(w),
            Token::Op(op @ (";" | "&&")) => {
                if current.words.is_empty() && !current.redirects.is_empty() {
                    return Err("a redirection without a command".into());
                }
                if !current.words.is_empty() {
                    commands.push(std::mem::take(&mut current));
                } else if op == "&&" {
                    return Err("`&&` without a command before it".into());
                }
            }
            Token::Op(op) => match tokens.next() {
                Some(Token::Word(target)) => current.redirects.push((op.to_string(), target)),
                _ => return Err(format!("`{op}` without a file after it")),
            },
        }
    }
    if !current.words.is_empty() {
        commands.push(current);
    } else if !current.redirects.is_empty() {
        return Err("a redirection without a command".into());
    }
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(cmd: &str) -> Vec<Vec<String>> {
        split(cmd).unwrap().into_iter().map(|c| c.words).collect()
    }

    #[test]
    fn quotes_escapes_lists_and_comments() {
        assert_eq!(
            words(r#"/bin/echo "SSHD: %IP%" >> /etc/hosts.allow"#),
            vec![vec!["/bin/echo", "SSHD: %IP%"]]
        );
        let c = &split(r#"/bin/echo "SSHD: %IP%" >> /etc/hosts.allow"#).unwrap()[0];
        assert_eq!(
            c.redirects,
            vec![(">>".to_string(), "/etc/hosts.allow".to_string())]
        );
        assert_eq!(
            words(r"perl -ni -e 'print unless /SSHD: %IP%/' /etc/hosts.allow"),
            vec![vec![
                "perl",
                "-ni",
                "-e",
                "print unless /SSHD: %IP%/",
                "/etc/hosts.allow"
            ]]
        );
        assert_eq!(words(r"a\ b c"), vec![vec!["a b", "c"]]);
        assert_eq!(words(r#"x "a\"b" 'c''d'"#), vec![vec!["x", "a\"b", "cd"]]);
        assert_eq!(
            words("iptables -A INPUT -j ACCEPT # a comment; not a command"),
            vec![vec!["iptables", "-A", "INPUT", "-j", "ACCEPT"]]
        );
        assert_eq!(
            words("a 1; b 2 && c;"),
            vec![vec!["a", "1"], vec!["b", "2"], vec!["c"]]
        );
        assert_eq!(words("a#b"), vec![vec!["a#b"]]);
    }

    #[test]
    fn refuses_what_depends_on_run_time() {
        for bad in [
            "echo $HOME",
            "echo \"$(id)\"",
            "echo `id`",
            "a | b",
            "a || b",
            "a &",
            "(a)",
            "a 2> /dev/null",
            "a >&2",
            "cat <<EOF",
            "echo 'open",
            "echo \"open",
            "a >",
            "echo x\\",
        ] {
            assert!(split(bad).is_err(), "{bad}");
        }
    }
}
