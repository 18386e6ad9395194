//! Shared by the load generator and the sink (issue 8): the TLS set-up,
//! SMTP reply and line reading, the sink's BDAT chunks, the generated
//! message, and the rule that a bare `cargo bench` (which runs every bench
//! target with only `--bench`) prints usage and succeeds instead of
//! starting a load run.

pub mod bdat;
pub mod smtp;
pub mod tls;

use clap::CommandFactory;

/// When the only argument is cargo's `--bench` (or there is none), print
/// the usage of `A` and exit 0: `cargo bench` must stay quick and harmless.
pub fn usage_if_bare<A: CommandFactory>() {
    let given = std::env::args().skip(1).filter(|a| a != "--bench").count();
    if given == 0 {
        let mut command = A::command();
        println!("{}", command.render_help());
        println!("(nothing to do without arguments; see benches/README.md)");
        std::process::exit(0);
    }
}
