//! Configuration: one TOML file -> validated [`Config`].

use std::path::Path;

pub struct Config {}

#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.join("\n"))
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let _ = path;
        todo!()
    }
    pub fn check_files(&self) -> Result<Vec<String>, ConfigErrors> {
        todo!()
    }
    pub fn summary(&self) -> String {
        todo!()
    }
}
