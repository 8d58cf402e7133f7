//! Reading a command's arguments, with errors that name the argument and say what is allowed.

use super::{CommandError, Spec};
use std::vec::IntoIter;

/// Longest piece of a client's argument quoted back in an error message, in characters.
const SHOW_MAX: usize = 64;

/// The arguments of one command after its name, read front to back.
pub(crate) struct Args {
    spec: &'static Spec,
    argc: usize,
    rest: IntoIter<Vec<u8>>,
}

impl Args {
    /// Arguments of a command of `spec` with `argc` words in all (its name included); `rest`
    /// follows the name.
    pub(crate) fn new(spec: &'static Spec, argc: usize, rest: IntoIter<Vec<u8>>) -> Args {
        Args { spec, argc, rest }
    }

    /// The command being parsed.
    pub(crate) fn spec(&self) -> &'static Spec {
        self.spec
    }

    /// Switches to a subcommand of the current spec, checking its arity.
    ///
    /// # Errors
    /// [`CommandError::Arity`] naming the subcommand.
    pub(crate) fn enter(&mut self, sub: &'static Spec) -> Result<(), CommandError> {
        self.spec = sub;
        if sub.arity_ok(self.argc) {
            Ok(())
        } else {
            Err(self.arity_error())
        }
    }

    /// Arguments not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next argument, if any.
    pub(crate) fn next(&mut self) -> Option<Vec<u8>> {
        self.rest.next()
    }

    /// The next argument, which the arity check guarantees.
    ///
    /// # Errors
    /// [`CommandError::Arity`] if it is missing after all.
    pub(crate) fn required(&mut self) -> Result<Vec<u8>, CommandError> {
        self.rest.next().ok_or_else(|| self.arity_error())
    }

    /// The next argument as UTF-8 text, named `name` in errors.
    ///
    /// # Errors
    /// [`CommandError::Arity`] if missing, [`CommandError::Invalid`] if not UTF-8.
    pub(crate) fn text(&mut self, name: &'static str) -> Result<String, CommandError> {
        let bytes = self.required()?;
        utf8(name, bytes)
    }

    /// The value after the option keyword `option` (`CATEGORY books`).
    ///
    /// # Errors
    /// [`CommandError::Syntax`] if the keyword is the last argument.
    pub(crate) fn option_value(&mut self, option: &str) -> Result<Vec<u8>, CommandError> {
        match self.rest.next() {
            Some(value) => Ok(value),
            None => Err(self.syntax(format!("{option} needs a value"))),
        }
    }

    /// A syntax error about this command, with its usage line.
    pub(crate) fn syntax(&self, reason: impl Into<String>) -> CommandError {
        CommandError::Syntax {
            reason: reason.into(),
            usage: self.spec.usage(),
        }
    }

    /// A wrong-number-of-arguments error about this command.
    pub(crate) fn arity_error(&self) -> CommandError {
        CommandError::Arity {
            command: self.spec.full_name(),
            usage: self.spec.usage(),
        }
    }

    /// Checks every argument was read.
    ///
    /// # Errors
    /// [`CommandError::Syntax`] naming the first extra argument.
    pub(crate) fn finish(mut self) -> Result<(), CommandError> {
        match self.rest.next() {
            None => Ok(()),
            Some(extra) => Err(self.syntax(format!("unexpected argument '{}'", show(&extra)))),
        }
    }
}

/// `bytes` as UTF-8 text, named `name` in the error.
///
/// # Errors
/// [`CommandError::Invalid`] if it is not UTF-8.
pub(crate) fn utf8(name: &'static str, bytes: Vec<u8>) -> Result<String, CommandError> {
    String::from_utf8(bytes).map_err(|e| CommandError::Invalid {
        name,
        value: show(e.as_bytes()),
        allowed: "must be valid UTF-8".into(),
    })
}

/// The value of a `COUNT` option: a whole number from 1 to `max`.
///
/// # Errors
/// [`CommandError::Invalid`] naming `COUNT` and the allowed range.
pub(crate) fn count(value: &[u8], max: usize) -> Result<usize, CommandError> {
    integer(value)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| CommandError::Invalid {
            name: "COUNT",
            value: show(value),
            allowed: format!("must be a whole number from 1 to {max}"),
        })
}

/// A time argument: unix milliseconds or an RFC 3339 time, named `name` in the error.
///
/// # Errors
/// [`CommandError::Invalid`] naming `name` and what is allowed.
pub(crate) fn unix_time(name: &'static str, value: &[u8]) -> Result<i64, CommandError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| crate::event::parse_timestamp(text).ok())
        .ok_or_else(|| CommandError::Invalid {
            name,
            value: show(value),
            allowed: "must be unix milliseconds or an RFC 3339 time".into(),
        })
}

/// Parses a whole decimal integer (optional sign), as Redis's `string2ll` accepts it.
pub(crate) fn integer(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.starts_with('+') || text.len() > 20 {
        return None;
    }
    text.parse().ok()
}

/// A client's argument as it may appear inside an error message: lossy UTF-8, control
/// characters escaped, at most 64 characters.
pub(crate) fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == SHOW_MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_strict() {
        assert_eq!(integer(b"42"), Some(42));
        assert_eq!(integer(b"-7"), Some(-7));
        assert_eq!(integer(b"+7"), None);
        assert_eq!(integer(b" 7"), None);
        assert_eq!(integer(b"7.0"), None);
        assert_eq!(integer(b"99999999999999999999"), None);
        assert_eq!(integer(b"\xff"), None);
    }

    #[test]
    fn shown_arguments_are_short_and_printable() {
        assert_eq!(show(b"a\r\nb"), "a\\r\\nb");
        assert_eq!(show(b"\xffx"), "\u{fffd}x");
        let long = show(&[b'y'; 100]);
        assert_eq!(long.chars().count(), 65);
        assert!(long.ends_with('…'));
    }
}
