//! What one client may hold of a front door, so that no client takes service away from
//! another: connections and requests in flight per client address ([`AddressSlots`]), and
//! bytes of request bodies buffered per connection and per listener ([`BodyBudget`]).
//!
//! By hand: hyper bounds a connection's streams and headers but not how many connections
//! one address holds, nor the bodies its handler buffers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Slots (connections, or requests in flight) per client address.
pub(super) struct AddressSlots {
    open: Mutex<HashMap<IpAddr, usize>>,
    per_address: usize,
}

impl AddressSlots {
    pub(super) fn new(per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::new(HashMap::new()),
            per_address,
        })
    }

    /// One more slot for `address`, or `None` when it holds them all.
    pub(super) fn take(self: &Arc<Self>, address: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_insert(0);
        if *count >= self.per_address {
            return None;
        }
        *count += 1;
        let held = *count;
        Some(AddressSlot {
            slots: self.clone(),
            address,
            held,
            addresses: open.len(),
        })
    }
}

/// One slot; given back when dropped.
pub(super) struct AddressSlot {
    slots: Arc<AddressSlots>,
    address: IpAddr,
    /// Slots its address held when it was taken, this one included.
    pub(super) held: usize,
    /// Addresses holding slots then, its own included.
    pub(super) addresses: usize,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// The body bytes one connection may still buffer, and its listener's; in the extensions
/// of every request the connection carries.
pub struct BodyBudget {
    connection: Arc<Semaphore>,
    listener: Arc<Semaphore>,
}

impl BodyBudget {
    pub(super) fn new(per_connection: usize, listener: Arc<Semaphore>) -> Arc<Self> {
        Arc::new(Self {
            connection: Arc::new(Semaphore::new(per_connection)),
            listener,
        })
    }

    /// The budget of a listener, all its connections together.
    pub(super) fn listener(bytes: usize) -> Arc<Semaphore> {
        Arc::new(Semaphore::new(bytes))
    }

    /// `bytes` more for one body, added to `held`; false when the connection or the
    /// listener has no room for them (the caller answers 503).
    pub fn reserve(&self, bytes: usize, held: &mut Option<BodyBytes>) -> bool {
        let Some(more) = self.take(bytes) else {
            return false;
        };
        match held {
            Some(held) => {
                held.connection.merge(more.connection);
                held.listener.merge(more.listener);
            }
            None => *held = Some(more),
        }
        true
    }

    fn take(&self, bytes: usize) -> Option<BodyBytes> {
        let bytes = u32::try_from(bytes).ok()?;
        Some(BodyBytes {
            connection: self.connection.clone().try_acquire_many_owned(bytes).ok()?,
            listener: self.listener.clone().try_acquire_many_owned(bytes).ok()?,
        })
    }
}

/// Body bytes buffered for one request, given back to the budget when it is dropped.
pub struct BodyBytes {
    connection: OwnedSemaphorePermit,
    listener: OwnedSemaphorePermit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_slots_and_gets_them_back() {
        let slots = AddressSlots::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = slots.take(a).unwrap();
        let second = slots.take(a).unwrap();
        assert_eq!((second.held, second.addresses), (2, 1));
        assert!(slots.take(a).is_none());
        let other = slots.take(b).unwrap();
        assert_eq!((other.held, other.addresses), (1, 2));
        drop(first);
        assert!(slots.take(a).is_some());
    }

    #[test]
    fn a_body_fits_both_budgets_or_is_refused_and_its_bytes_come_back() {
        let listener = BodyBudget::listener(10);
        let one = BodyBudget::new(6, listener.clone());
        let other = BodyBudget::new(6, listener.clone());
        let mut held = None;
        assert!(one.reserve(4, &mut held));
        assert!(one.reserve(2, &mut held));
        // The connection's 6 are used.
        assert!(!one.reserve(1, &mut None));
        // The listener has 4 left: another connection gets them, not 5.
        assert!(!other.reserve(5, &mut None));
        let mut other_held = None;
        assert!(other.reserve(4, &mut other_held));
        drop(held);
        assert!(one.reserve(6, &mut None));
    }
}
