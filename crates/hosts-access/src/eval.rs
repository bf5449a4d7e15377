//! Predicts libwrap's run-time verdict for one request over a hosts.allow and a hosts.deny,
//! as tcpdmatch does for a numeric client with no DNS: the client's name is `unknown`.

use std::fmt;
use std::net::IpAddr;

/// What the server would be asked: daemon (process) name, optional server address or name
/// (`daemon@server`), optional remote user (`user@client`, from ident), and the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub daemon: String,
    pub server: Option<String>,
    pub user: Option<String>,
    pub client: IpAddr,
}

/// Why a `match` request could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("daemon name is empty")]
    EmptyDaemon,
    #[error("server after `@` is empty in {0:?}")]
    EmptyServer(String),
    #[error("user before `@` is empty in {0:?}")]
    EmptyUser(String),
    #[error("client {0:?} is not a numeric IPv4 or IPv6 address")]
    BadClient(String),
}

impl Request {
    /// A request for `daemon` from `client`, no server, no user.
    pub fn new(daemon: impl Into<String>, client: IpAddr) -> Request {
        Request {
            daemon: daemon.into(),
            server: None,
            user: None,
            client,
        }
    }

    /// Reads tcpdmatch's argument forms: `DAEMON[@SERVER]` and `[USER@]CLIENT_ADDR`, where the
    /// address may be IPv4, IPv6, or bracketed IPv6 (`[2001:db8::1]`).
    pub fn parse(daemon_arg: &str, client_arg: &str) -> Result<Request, RequestError> {
        let (daemon, server) = match daemon_arg.split_once('@') {
            Some((d, s)) => {
                if s.is_empty() {
                    return Err(RequestError::EmptyServer(daemon_arg.to_owned()));
                }
                (d, Some(s.to_owned()))
            }
            None => (daemon_arg, None),
        };
        if daemon.is_empty() {
            return Err(RequestError::EmptyDaemon);
        }
        let (user, addr) = match client_arg.rsplit_once('@') {
            Some((u, a)) => {
                if u.is_empty() {
                    return Err(RequestError::EmptyUser(client_arg.to_owned()));
                }
                (Some(u.to_owned()), a)
            }
            None => (None, client_arg),
        };
        let bare = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let client: IpAddr = bare
            .parse()
            .map_err(|_| RequestError::BadClient(client_arg.to_owned()))?;
        if bare.len() != addr.len() && client.is_ipv4() {
            return Err(RequestError::BadClient(client_arg.to_owned()));
        }
        Ok(Request {
            daemon: daemon.to_owned(),
            server,
            user,
            client,
        })
    }
}

/// libwrap's answer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Granted,
    Denied,
    /// A matching `twist` rule: the connection is handed to another command instead of the
    /// service (tcpdmatch reports it as its own outcome).
    Delegated,
}

impl Verdict {
    /// `"granted"`, `"denied"` or `"delegated"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Granted => "granted",
            Verdict::Denied => "denied",
            Verdict::Delegated => "delegated",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which file decided.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    Allow,
    Deny,
}

/// The verdict, where it came from (`table`/`line` of the deciding rule; `None` when no rule
/// matched and access is granted by default) and a one-line explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub table: Option<Table>,
    pub line: Option<usize>,
    pub reason: String,
}

/// libwrap's verdict for `request` given the two files' bytes (a missing file is empty).
pub fn evaluate(allow: &[u8], deny: &[u8], request: &Request) -> Decision {
    let _ = (allow, deny, request);
    Decision {
        verdict: Verdict::Granted,
        table: None,
        line: None,
        reason: "no rule matched (evaluator not built yet)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_parse_forms() {
        let r = Request::parse("sshd", "192.0.2.1").unwrap();
        assert_eq!(r, Request::new("sshd", "192.0.2.1".parse().unwrap()));
        let r = Request::parse("sshd@10.0.0.1", "alice@[2001:db8::1]").unwrap();
        assert_eq!(r.server.as_deref(), Some("10.0.0.1"));
        assert_eq!(r.user.as_deref(), Some("alice"));
        assert_eq!(r.client, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert!(Request::parse("sshd", "2001:db8::1").is_ok());
        assert_eq!(
            Request::parse("sshd", "host.example"),
            Err(RequestError::BadClient("host.example".into()))
        );
        assert_eq!(
            Request::parse("sshd", "[192.0.2.1]"),
            Err(RequestError::BadClient("[192.0.2.1]".into()))
        );
        assert_eq!(
            Request::parse("", "192.0.2.1"),
            Err(RequestError::EmptyDaemon)
        );
        assert!(Request::parse("sshd@", "192.0.2.1").is_err());
        assert!(Request::parse("sshd", "@192.0.2.1").is_err());
    }
}
