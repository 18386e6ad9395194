//! Configuration loading from text: `Config::parse` (src/config/mod.rs),
//! serde with deny_unknown_fields, then the cross-field checks. Asserts,
//! for any text:
//!
//! * no panic, whether the text is valid TOML or not;
//! * every error has a position inside the text (1-based line and
//!   column) and reads `fuzz.toml:LINE:COL: …`, as `check-config` prints it;
//! * a valid configuration gives the inbound policy and the
//!   `check-config` summary without panicking, and parses again the same
//!   way (the result does not depend on anything but the text).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tlsrelay::config::Config;
use tlsrelay::inbound::policy::InboundPolicy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("fuzz.toml");
    match Config::parse(file, text.to_string()) {
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error list with no error");
            let lines = text.split('\n').count();
            for error in &errors.0 {
                let Some((line, col)) = error.position else {
                    panic!("no position: {error}");
                };
                assert!(
                    (1..=lines).contains(&line),
                    "line {line} of {lines}: {error}"
                );
                let width = text
                    .split('\n')
                    .nth(line - 1)
                    .map_or(0, |l| l.chars().count());
                assert!(
                    (1..=width + 1).contains(&col),
                    "col {col} of {width}: {error}"
                );
                let shown = error.to_string();
                assert!(
                    shown.starts_with(&format!("fuzz.toml:{line}:{col}: ")),
                    "{shown}"
                );
            }
        }
        Ok(config) => {
            let _ = InboundPolicy::new(&config, Default::default());
            let _ = config.summary();
            assert!(
                Config::parse(file, text.to_string()).is_ok(),
                "second parse"
            );
        }
    }
});
