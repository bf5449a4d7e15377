//! Bounds on what a storm of knocks can grow in the root parent. A replayed static sequence
//! from thousands of spoofed sources completes thousands of times; each completion may ask
//! for a new managed line and lease, and while an operator holds the hosts.allow lock
//! (`flock … vi`) the grants wait in memory. Both are bounded by the configuration
//! (`max_leases`, `max_waiting_grants`): what goes beyond is refused, counted in status and
//! metrics, and logged as one summary per reason and door per 10 s (the refusal log), never
//! a stall or an unbounded file.

use std::collections::HashSet;
use std::net::IpAddr;

use hosts_writer::state::Grant;

/// Why a grant was refused here, as status and metrics name it.
pub const LEASES_FULL: &str = "lease limit reached";
pub const WAITING_FULL: &str = "waiting grants limit reached";

/// Splits `batch` into the grants that fit under `max` leases and those refused. A grant for
/// an (address, service) that already has a lease, or that an earlier grant of the batch
/// takes, always fits: it adds no line. `leased` is only built when the bound is in reach.
pub fn within_leases<'a>(
    batch: Vec<Grant>,
    leased: impl FnOnce() -> HashSet<(IpAddr, &'a str)>,
    leases_now: usize,
    max: usize,
) -> (Vec<Grant>, Vec<Grant>) {
    if leases_now.saturating_add(batch.len()) <= max {
        return (batch, Vec::new());
    }
    let leased = leased();
    let mut taken: HashSet<(IpAddr, String)> = HashSet::new();
    let mut count = leases_now;
    let (mut fit, mut refused) = (Vec::new(), Vec::new());
    for g in batch {
        let addr = g.addr.to_canonical();
        if leased.contains(&(addr, g.service.as_str()))
            || taken.contains(&(addr, g.service.clone()))
        {
            fit.push(g);
        } else if count < max {
            count += 1;
            taken.insert((addr, g.service.clone()));
            fit.push(g);
        } else {
            refused.push(g);
        }
    }
    (fit, refused)
}

/// Adds `batch` to the grants waiting for the hosts.allow lock, at most `max` of them: a
/// grant for an (address, service) already waiting replaces it (the later knock), and what
/// does not fit is returned, refused.
pub fn wait(waiting: &mut Vec<Grant>, batch: Vec<Grant>, max: usize) -> Vec<Grant> {
    let mut refused = Vec::new();
    for g in batch {
        let key = |x: &Grant| (x.addr.to_canonical(), x.service.clone());
        if let Some(w) = waiting.iter_mut().rev().find(|w| key(w) == key(&g)) {
            *w = g;
        } else if waiting.len() < max {
            waiting.push(g);
        } else {
            refused.push(g);
        }
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn g(addr: &str) -> Grant {
        Grant {
            door: "d".into(),
            service: "SSHD".into(),
            addr: addr.parse().unwrap(),
            lease: Some(Duration::from_secs(60)),
            wall_ms: 1,
            line: true,
            ports: Vec::new(),
        }
    }

    #[test]
    fn new_addresses_beyond_the_lease_limit_are_refused_known_ones_fit() {
        let batch = vec![
            g("10.0.0.1"),
            g("10.0.0.2"),
            g("10.0.0.3"),
            g("10.0.0.2"),
            g("10.0.0.9"),
        ];
        let leased = || {
            [("10.0.0.9".parse().unwrap(), "SSHD")]
                .into_iter()
                .collect()
        };
        let (fit, refused) = within_leases(batch, leased, 1, 3);
        let addrs = |v: &[Grant]| v.iter().map(|g| g.addr.to_string()).collect::<Vec<_>>();
        assert_eq!(
            addrs(&fit),
            ["10.0.0.1", "10.0.0.2", "10.0.0.2", "10.0.0.9"]
        );
        assert_eq!(addrs(&refused), ["10.0.0.3"]);
        // Far from the limit, nothing is looked up.
        let (fit, refused) = within_leases(vec![g("10.0.0.1")], || unreachable!(), 10, 100);
        assert_eq!((fit.len(), refused.len()), (1, 0));
    }

    #[test]
    fn waiting_grants_are_bounded_and_a_later_knock_replaces_an_earlier_one() {
        let mut waiting = Vec::new();
        assert!(wait(&mut waiting, vec![g("10.0.0.1"), g("10.0.0.2")], 2).is_empty());
        let mut later = g("10.0.0.1");
        later.wall_ms = 99;
        let refused = wait(&mut waiting, vec![later, g("10.0.0.3")], 2);
        assert_eq!(waiting.len(), 2);
        assert_eq!(waiting[0].wall_ms, 99);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].addr.to_string(), "10.0.0.3");
    }
}
