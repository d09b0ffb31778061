//! Human approval as pure domain code: the one decision gate every channel
//! decides through ([`gate`]) and the seam channels plug into ([`channel`]).
//!
//! The proxy builds its broker from a list of [`channel::ApprovalChannel`]s;
//! routing, notification and outcome announcements go through that list, so a
//! new channel (Telegram, passkeys) is added beside the others without
//! editing the gate or the forward path.

pub mod channel;
pub mod gate;

pub use channel::{ApprovalChannel, ApprovalSummary, ChannelError};
pub use gate::{
    Decided, Decision, GateError, PasskeyProof, approval_eligible, approval_policies, decide,
    eligible_approvers, eligible_for_all,
};
