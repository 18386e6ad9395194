//! `[[inbound]] bare_lf`: what the DATA and BDAT receivers do with a bare
//! LF or CR (see [`data`](super::data)); the inbound connector chooses.

use std::fmt;

use serde::Deserialize;

/// What to do with a bare LF or CR inside DATA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BareLf {
    /// Answer `521 5.5.2` and drop the message (the SMTP-smuggling defence).
    #[default]
    Reject,
    /// Turn them into CRLF; they never end the data.
    Normalize,
}

impl fmt::Display for BareLf {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            BareLf::Reject => "reject",
            BareLf::Normalize => "normalize",
        })
    }
}
