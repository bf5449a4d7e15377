//! The firewall door's operations on the kernel: [`Firewall`] owns one nftables table and
//! changes it only through whole nft transactions built by [`crate::plan`], so that every call
//! either happens completely or leaves the table as it was.
//!
//! One process owns the table (the daemon's root parent); the methods take `&self` but two
//! processes changing the same table at once may see each other's changes between a listing
//! and the transaction built from it (a revoke could then miss an admission made meanwhile).

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;

use nftables::schema::{NfObject, Nftables};

use crate::elements::{parse_listing, Listing};
use crate::error::Error;
use crate::plan;
use crate::runner::{RunError, Runner};
use crate::spec::{canonical, Checked, Proto, Spec};
use crate::spec::{Admit, Admitted, Revoke};

/// What [`Firewall::ensure`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// There was no table; it now has the layout, the guarded ports and always-allow sources.
    Created,
    /// The table had the layout: chains rebuilt, guarded and always-allow sets refilled, and
    /// the admitted sets untouched (every admission keeps its exact time left).
    Updated,
    /// The table had objects or types of its own (`why`): it was replaced whole in one
    /// transaction, its readable admissions re-added with their time left rounded up to the
    /// next second (`kept`), the others not (`dropped`).
    Replaced {
        why: String,
        kept: usize,
        dropped: usize,
    },
}

/// The kernel firewall door: one nftables table, family `inet`.
#[derive(Clone, Debug)]
pub struct Firewall {
    spec: Checked,
    runner: Runner,
}

type Obj = NfObject<'static>;

impl Firewall {
    /// A firewall for `spec`, run through `runner`. Checks the spec; touches nothing.
    pub fn new(spec: Spec, runner: Runner) -> Result<Firewall, Error> {
        Ok(Firewall {
            spec: spec.check()?,
            runner,
        })
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        self.spec.table()
    }

    /// The spec as installed (normalised).
    pub fn spec(&self) -> &Checked {
        &self.spec
    }

    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// Create the table, or bring an existing one to the spec, in one transaction, keeping
    /// every admission (see [`Ensured`]).
    pub fn ensure(&self) -> Result<Ensured, Error> {
        const ACTION: &str = "install the table";
        let listing = match self.listing(ACTION) {
            Err(Error::Missing { .. }) => {
                self.run(ACTION, plan::create(&self.spec))?;
                return Ok(Ensured::Created);
            }
            other => other?,
        };
        let Some(why) = listing.foreign.clone() else {
            self.run(ACTION, plan::update(&self.spec))?;
            return Ok(Ensured::Updated);
        };
        let keep: Vec<Admit> = listing
            .admitted()
            .into_iter()
            .filter_map(|a| {
                // nft lists whole seconds, rounded down: one more never ends it early.
                a.expires_in.map(|left| Admit {
                    addr: a.addr,
                    proto: a.proto,
                    port: a.port,
                    timeout: left + Duration::from_secs(1),
                })
            })
            .collect();
        self.run(ACTION, plan::replace(&self.spec, &keep))?;
        Ok(Ensured::Replaced {
            why,
            kept: keep.len(),
            dropped: listing.found.len() - keep.len(),
        })
    }

    /// Admit `addr` to `port`/`proto` for `timeout` (whole seconds, rounded up). Re-admitting
    /// sets the timeout anew. An IPv4-mapped IPv6 address admits the IPv4 address.
    pub fn admit(
        &self,
        addr: IpAddr,
        proto: Proto,
        port: u16,
        timeout: Duration,
    ) -> Result<(), Error> {
        let admit = Admit {
            addr,
            proto,
            port,
            timeout,
        };
        self.apply(&[admit], &[])
    }

    /// Remove every admission of `addr`; returns how many there were.
    pub fn revoke(&self, addr: IpAddr) -> Result<usize, Error> {
        let listing = self.listing("revoke")?;
        let addr = canonical(addr);
        let n = listing
            .found
            .iter()
            .filter(|f| f.addr == Some(addr))
            .count();
        self.apply_on(&listing, &[], &[Revoke::Addr(addr)])?;
        Ok(n)
    }

    /// Many changes in one transaction: the revokes first, then the admissions (so an address
    /// both revoked and admitted ends admitted to what `admits` says). Nothing happens unless
    /// all of it does.
    pub fn apply(&self, admits: &[Admit], revokes: &[Revoke]) -> Result<(), Error> {
        for a in admits {
            self.check_admit(a)?;
        }
        let listing = if revokes.iter().any(|r| matches!(r, Revoke::Addr(_))) {
            self.listing("revoke")?
        } else {
            Listing::default()
        };
        self.apply_on(&listing, admits, revokes)
    }

    /// Every admission with its time left.
    pub fn elements(&self) -> Result<Vec<Admitted>, Error> {
        Ok(self.listing("list the admissions")?.admitted())
    }

    /// Whether the table exists.
    pub fn exists(&self) -> Result<bool, Error> {
        match self.listing("look for the table") {
            Ok(_) => Ok(true),
            Err(Error::Missing { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Delete the table with everything in it; nothing to do when it is not there.
    pub fn remove(&self) -> Result<(), Error> {
        self.run("remove the table", plan::remove(self.table()))
            .map(drop)
    }

    fn check_admit(&self, a: &Admit) -> Result<(), Error> {
        let table = self.table().to_string();
        if a.port == 0 {
            return Err(Error::PortZero {
                table,
                proto: a.proto,
            });
        }
        if a.timeout.is_zero() {
            return Err(Error::ZeroTimeout {
                table,
                addr: a.addr,
                proto: a.proto,
                port: a.port,
            });
        }
        Ok(())
    }

    fn apply_on(
        &self,
        listing: &Listing,
        admits: &[Admit],
        revokes: &[Revoke],
    ) -> Result<(), Error> {
        let t = self.table();
        let mut batch: Vec<Obj> = Vec::new();
        for r in revokes {
            match *r {
                Revoke::Addr(addr) => {
                    let addr = canonical(addr);
                    for f in listing.found.iter().filter(|f| f.addr == Some(addr)) {
                        batch.extend(plan::delete(t, f.set, f.val.clone()));
                    }
                }
                Revoke::Port { addr, proto, port } => {
                    let addr = canonical(addr);
                    let set = plan::admit_set(addr);
                    batch.extend(plan::delete(t, set, plan::key(addr, proto, port)));
                }
            }
        }
        for a in admits {
            let a = Admit {
                addr: canonical(a.addr),
                ..*a
            };
            batch.extend(plan::admit(t, &a));
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.run(if admits.is_empty() { "revoke" } else { "admit" }, batch)
            .map(drop)
    }

    fn listing(&self, action: &'static str) -> Result<Listing, Error> {
        let out = match self.run(action, plan::list(self.table())) {
            Err(Error::Nft { said, .. }) if said.contains("No such file or directory") => {
                return Err(Error::Missing {
                    table: self.table().to_string(),
                    action,
                })
            }
            other => other?,
        };
        parse_listing(self.table(), &out).map_err(|why| Error::Listing {
            table: self.table().to_string(),
            action,
            why,
        })
    }

    fn run(&self, action: &'static str, objects: Vec<Obj>) -> Result<String, Error> {
        let doc = Nftables {
            objects: Cow::Owned(objects),
        };
        // Serialising these types cannot fail (no maps with non-string keys, no floats).
        let json = serde_json::to_string(&doc).expect("nft document serialises");
        self.runner.run(&json).map_err(|e| match e {
            RunError::Spawn(source) => Error::Spawn {
                table: self.table().to_string(),
                action,
                program: self.runner.describe(),
                source,
            },
            RunError::Failed { status, said } => Error::Nft {
                table: self.table().to_string(),
                action,
                program: self.runner.describe(),
                status,
                said,
            },
        })
    }
}
