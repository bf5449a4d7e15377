//! What both of the daemon's processes use, and nothing that belongs to one of them: the
//! wall-clock anchor over the event clock ([`clock`]), this host's addresses and the
//! destinations a knock may have ([`local`]), the bounded refusal log ([`refusals`]), and how
//! long start-up waits for the captures ([`OPEN_WAIT`]).

pub mod clock;
pub mod local;
pub mod refusals;

use std::time::Duration;

/// How long start-up waits for each interface's capture to open before reporting ready: the
/// child waits this for its captures, the parent a little longer for the child.
pub const OPEN_WAIT: Duration = Duration::from_secs(3);
