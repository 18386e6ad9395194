//! The outbound side as the queue sees it: the queue's
//! [`Delivery`] trait, carried out by the [`Deliverer`].

use std::future::Future;

use super::deliver::Deliverer;
use super::route::Resolve;
use crate::queue::body::Body;
use crate::queue::delivery::{Delivery, RecipientOutcome};
use crate::queue::envelope::{Envelope, Recipient};

impl<R: Resolve + 'static> Delivery for Deliverer<R> {
    fn attempt<'a>(
        &'a self,
        id: &'a str,
        envelope: &'a Envelope,
        content: &'a Body,
        pending: &'a [&'a Recipient],
    ) -> impl Future<Output = Vec<RecipientOutcome>> + Send + 'a {
        Deliverer::attempt(self, id, envelope, content, pending)
    }

    fn sweep_idle(&self) {
        Deliverer::sweep_idle(self)
    }
}
