//! Where temporary files' bytes are charged: the accountant's disk budget, through a seam.
//!
//! Each file gets one [`DiskHold`] (for an [`Accountant`], a [`Category::Disk`]
//! [`Reservation`]), resized as the file grows and released when the file is removed or
//! persisted. Writing past the budget fails with the ledger's refusal.

use std::fmt;
use std::ops::Deref;

use w4l_core::accountant::{Accountant, Category, Reservation};

/// The disk ledger refused to account for more bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskRefused {
    /// The total size that was asked for.
    pub requested: u64,
    /// Why (from the ledger).
    pub reason: String,
}

impl fmt::Display for DiskRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a temporary file may not grow to {} bytes: {}",
            self.requested, self.reason
        )
    }
}

impl std::error::Error for DiskRefused {}

/// Where temporary files' bytes are charged: the memory accountant's `Disk` category.
///
/// [`create_charged`](crate::tempfiles::ResourceManager::create_charged) gives each file a
/// [`DiskHold`] of one.
pub trait DiskLedger: Send + Sync {
    /// A new, empty hold for one file.
    fn hold(&self) -> Box<dyn DiskHold>;
}

/// The bytes charged for one file (a reservation in the `Disk` category). Dropping it
/// releases them.
pub trait DiskHold: Send {
    /// Sets the charge to `bytes` in total (the file's current size). On refusal the previous
    /// charge stays.
    fn resize(&mut self, bytes: u64) -> Result<(), DiskRefused>;
}

/// The core accountant as a ledger: each file holds a [`Category::Disk`] reservation.
/// Implemented for any shared handle of an [`Accountant`] (`Arc<Accountant>`,
/// `&'static Accountant`).
impl<A> DiskLedger for A
where
    A: Deref<Target = Accountant> + Clone + Send + Sync + 'static,
{
    fn hold(&self) -> Box<dyn DiskHold> {
        Box::new(AccountantHold {
            handle: self.clone(),
            reservation: None,
        })
    }
}

/// A file's [`Category::Disk`] reservation, taken at its first growth.
struct AccountantHold<A: Deref<Target = Accountant>> {
    handle: A,
    reservation: Option<Reservation<A>>,
}

impl<A> DiskHold for AccountantHold<A>
where
    A: Deref<Target = Accountant> + Clone + Send,
{
    fn resize(&mut self, bytes: u64) -> Result<(), DiskRefused> {
        let refused = |reason: String| DiskRefused {
            requested: bytes,
            reason,
        };
        let want = usize::try_from(bytes)
            .map_err(|_| refused("more bytes than this machine can address".into()))?;
        let result = match self.reservation.as_mut() {
            Some(reservation) => reservation.resize(want),
            None => Accountant::try_reserve_in(self.handle.clone(), Category::Disk, want)
                .map(|r| self.reservation = Some(r)),
        };
        result.map_err(|e| refused(e.to_string()))
    }
}
