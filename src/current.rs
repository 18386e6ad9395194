//! A value that SIGHUP can replace while the relay runs (DESIGN.md §7).
//!
//! Whoever starts a piece of work (a session, a delivery attempt) takes
//! the value current at that moment and keeps it to the end, so a reload
//! changes what new work sees and never what work in progress started
//! with; the swap itself is one pointer under a lock, so a reader sees the
//! old value or the new one whole, never a mix.

use std::sync::{Arc, RwLock};

pub struct Current<T> {
    value: Arc<RwLock<Arc<T>>>,
}

impl<T> Clone for Current<T> {
    fn clone(&self) -> Self {
        Current {
            value: self.value.clone(),
        }
    }
}

impl<T> Current<T> {
    pub fn new(value: T) -> Self {
        Current {
            value: Arc::new(RwLock::new(Arc::new(value))),
        }
    }

    /// The value now, for as long as the caller holds it.
    pub fn get(&self) -> Arc<T> {
        match self.value.read() {
            Ok(value) => value.clone(),
            // A writer panicked mid-swap; the pointer is still whole.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `value` in place for everything that starts from now on.
    pub fn replace(&self, value: T) {
        let value = Arc::new(value);
        match self.value.write() {
            Ok(mut slot) => *slot = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_keep_what_they_took_and_newcomers_see_the_replacement() {
        let current = Current::new("old".to_string());
        let taken = current.get();
        let elsewhere = current.clone();
        elsewhere.replace("new".to_string());
        assert_eq!(*taken, "old");
        assert_eq!(*current.get(), "new");
    }
}
