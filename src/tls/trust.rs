//! Trust anchors (webpki roots plus configured CA files) and chain verification.
