//! The outbound side: where mail goes and how it gets there.
//!
//! # How a message leaves
//!
//! The queue hands one message and its pending recipients to
//! [`deliver::Deliverer::attempt`]; from there, file by file:
//!
//! 1. [`deliver`] groups the recipients by domain and takes the
//!    [`deliver::Settings`] in force (a reload swaps them; the attempt keeps
//!    what it started with).
//! 2. [`connector`] picks the outbound connector for the domain: the most
//!    specific `recipient_domains` pattern, or the default one (MX lookup,
//!    opportunistic TLS) made when the configuration was loaded. Each
//!    connector carries its own trust store.
//! 3. [`route`] turns the connector into hops: its smarthosts in order,
//!    or the domain's MX hosts by preference (DNS behind
//!    [`route::Resolve`]); `deliver` looks up each hop's addresses and
//!    tries them in turn.
//! 4. For each address `deliver` takes a connection slot
//!    (`max_connections_per_destination`) and a kept connection if one is
//!    idle and answers RSET (`pool`); otherwise it asks the broken-TLS
//!    [`memory`] which rung to start on, and climbs the [`ladder`]:
//!    * connect, greeting, EHLO ([`client`] over a [`stream::Stream`],
//!      plain TCP until STARTTLS);
//!    * [`policy::after_ehlo`]: plaintext (and why), STARTTLS, or defer;
//!    * STARTTLS, the handshake with the rung's TLS versions
//!      ([`policy::tls_versions`]), the certificate checked by
//!      [`crate::tls::verify`] against the connector, EHLO again over TLS;
//!    * [`policy::after_handshake`]: deliver (with a note) or defer, or,
//!      when TLS failed, [`policy::after_failure`]: the next rung on a new
//!      connection, or defer.
//!
//!    The ladder reports each step to an observer: delivery's
//!    (`attempt_log`) writes one log line and one metric per step and
//!    tells the memory which rungs work; `probe`'s ([`probe`]) writes its
//!    report.
//! 5. On the connection the ladder made ready, `send` runs the
//!    transaction (MAIL, RCPT, DATA, pipelined when offered) and
//!    [`outcome`] judges each recipient: delivered, deferred or failed.
//!    A deferral by the policy ([`policy::Deferral`], a 4.7.x status) or
//!    an unreachable address moves on to the next address, then the next
//!    hop; the last reason is the recipients' when none takes the mail.
//! 6. A cleanly finished connection is kept for the next message to the
//!    same server (`pool`), except a plaintext one after TLS failed.
//!
//! `tlsrelay probe` climbs the same ladder with the same settings and
//! stops before MAIL, so what it predicts is what delivery does.
//!
//! Beside the ladder: [`memory_admin`] is `tlsrelay tls-memory` (list and
//! clear the broken-TLS memory); `queue_delivery` implements the queue's
//! `Delivery` trait with the deliverer, so the queue never names outbound
//! types. [`dane`] holds the DANE table of DESIGN.md §5b (RFC 7672) as a pure
//! function of validated answers and the precedence of levels and DANE
//! ([`dane::governs`]): where DANE is asked, `route` looks the MX up
//! validated (a bogus one defers the domain), [`route::plan_host`] each
//! host's addresses and TLSA records, and the ladder climbs as the level
//! `dane` where DANE governs (one TLS rung, no plaintext, no memory, the
//! handshake authenticated by the TLSA records).
//!
//! MTA-STS (RFC 8461, DESIGN.md §5b): where it is asked (MX routing under
//! `opportunistic`, `required` or no connector, `[mta_sts] enabled`),
//! `deliver` asks [`sts::DomainSts::find`] for the domain's policy
//! (`crate::mta_sts`: TXT, HTTPS fetch, the disk cache, RFC 8461 §5.1),
//! and per host where DANE does not govern: under `enforce` a host the
//! policy does not name is not contacted, a matching one climbs the
//! ladder as `verify-host` against the webpki roots plus `[mta_sts]
//! ca_file` with every deferral naming MTA-STS; under `testing` the
//! ladder is the connector's and the session is judged. `address` runs
//! one address (kept connection or ladder, then the transaction) and
//! `transit_log` turns each session and delivered message into a
//! `crate::transit::Event` for the transit store (TLS-RPT, `report`).
//! `probe` ([`probe`], `probe_sts`) shows the record, the policy, the MX
//! matches and the `sts=` word from the same code.
//!
//! REQUIRETLS (RFC 8689, DESIGN.md §5b): [`requiretls::Demand`] says what
//! one message asks of a destination's hops. For a flagged message
//! `deliver` looks the MX up validated, skips (without connecting) a host
//! that is neither a smarthost, nor from a DNSSEC-secure MX answer, nor
//! named by an enforced MTA-STS policy; the ladder climbs as `verify-host`
//! where no stronger check governs; `address` QUITs before MAIL when the
//! certificate was not verified or the server does not offer REQUIRETLS;
//! `wire` passes the parameter on. When every hop failed so, the message
//! fails with 5.7.30. `TLS-Required: No` lifts DANE and MTA-STS.

mod address;
mod attempt_log;
pub mod cert_connect;
pub mod client;
pub mod connector;
pub mod dane;
mod deferral;
pub mod deliver;
pub mod ladder;
pub mod memory;
pub mod memory_admin;
pub mod memory_file;
pub mod observer;
pub mod outcome;
pub mod policy;
mod pool;
pub mod probe;
mod probe_dane;
mod probe_steps;
mod probe_sts;
mod queue_delivery;
pub mod requiretls;
pub mod route;
mod send;
mod settings;
pub mod stream;
pub mod sts;
mod transit_log;
mod wire;
