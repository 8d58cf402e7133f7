//! `PROFILE.*`: reading profiles and setting attributes.

use super::args::{integer, show, utf8};
use super::{ArgDoc, ArgKind, Args, Command, CommandError, Ctx, Spec};
use crate::features::AttrValue;
use crate::query::Profile;
use crate::server::frame::Frame;

/// `PROFILE.GET`.
pub(crate) const GET: Spec = Spec {
    name: "PROFILE.GET",
    arity: -2,
    flags: &["readonly"],
    key: 1,
    group: "profile",
    since: "0.1.0",
    summary: "Returns a customer's profile (now, or at a past version) with model outputs.",
    args: &[
        ArgDoc::new("customer", ArgKind::Key),
        ArgDoc::new("version", ArgKind::Integer)
            .token("VERSION")
            .optional(),
    ],
    subcommands: &[],
    parse: |args| Get::parse(args).map(Command::ProfileGet),
    container: "",
};

/// `PROFILE.SET`.
pub(crate) const SET: Spec = Spec {
    name: "PROFILE.SET",
    arity: -4,
    flags: &["write"],
    key: 1,
    group: "profile",
    since: "0.1.0",
    summary: "Sets attributes of a customer (creating the profile); returns the new version.",
    args: &[
        ArgDoc::new("customer", ArgKind::Key),
        ArgDoc::new(
            "data",
            ArgKind::Block(&[
                ArgDoc::new("field", ArgKind::String),
                ArgDoc::new("value", ArgKind::String),
            ]),
        )
        .multiple(),
    ],
    subcommands: &[],
    parse: |args| Set::parse(args).map(Command::ProfileSet),
    container: "",
};

/// A customer's profile as of the store's watermark, or at a past `VERSION` (the most recent
/// versions are kept, 16 by default). A null reply when the customer is unknown.
///
/// # Format
///
/// ```text
/// PROFILE.GET customer [VERSION version]
///
/// *2\r\n$11\r\nPROFILE.GET\r\n$3\r\nc42\r\n
///
/// RESP3: %12\r\n$11\r\ncustomer_id\r\n$3\r\nc42\r\n$7\r\nversion\r\n:3\r\n ...
///        $10\r\nattributes\r\n%1\r\n$3\r\nage\r\n,34\r\n
///        $8\r\nfeatures\r\n%N\r\n$9\r\nrecency_d\r\n,0.5\r\n ...
/// RESP2: the same as flat arrays: *24\r\n$11\r\ncustomer_id\r\n$3\r\nc42\r\n ...
/// unknown customer: _\r\n (RESP3), $-1\r\n (RESP2)
/// ```
#[derive(Debug)]
pub(crate) struct Get {
    customer: String,
    version: Option<u64>,
}

impl Get {
    fn parse(args: &mut Args) -> Result<Get, CommandError> {
        let customer = args.text("customer")?;
        let mut version = None;
        while let Some(word) = args.next() {
            if !word.eq_ignore_ascii_case(b"VERSION") {
                return Err(args.syntax(format!(
                    "unknown option '{}'; expected VERSION",
                    show(&word)
                )));
            }
            if version.is_some() {
                return Err(args.syntax("VERSION given twice"));
            }
            let value = args.option_value("VERSION")?;
            let parsed = integer(&value)
                .and_then(|v| u64::try_from(v).ok())
                .filter(|&v| v >= 1);
            version = Some(parsed.ok_or_else(|| CommandError::Invalid {
                name: "VERSION",
                value: show(&value),
                allowed: "must be a whole number >= 1".into(),
            })?);
        }
        Ok(Get { customer, version })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let db = &ctx.server.db;
        let profile = match self.version {
            Some(v) => db.profile_at(&self.customer, v)?,
            None => db.profile(&self.customer)?,
        };
        Ok(match profile {
            Some(p) => profile_frame(&p, &db.feature_names()),
            None => Frame::Null,
        })
    }
}

/// A profile as a map; attributes and features are nested maps.
fn profile_frame(p: &Profile, names: &[String]) -> Frame {
    let attributes = p
        .attributes
        .iter()
        .map(|(name, value)| {
            let value = match value {
                AttrValue::Number(n) => Frame::Double(*n),
                AttrValue::Text(t) => Frame::bulk(t),
            };
            (Frame::bulk(name), value)
        })
        .collect();
    let features = names
        .iter()
        .zip(&p.features)
        .map(|(name, value)| (Frame::bulk(name), Frame::Double(*value)))
        .collect();
    let time = |ms: Option<i64>| ms.map_or(Frame::Null, Frame::Integer);
    Frame::map_from([
        ("customer_id", Frame::bulk(&p.customer_id)),
        ("version", super::int(p.version)),
        ("event_count", super::int(p.event_count)),
        ("first_seen_ms", time(p.first_seen_ms)),
        ("last_seen_ms", time(p.last_seen_ms)),
        ("as_of_ms", Frame::Integer(p.as_of_ms)),
        ("segment", super::opt_int(p.segment.map(u64::from))),
        (
            "segment_distance",
            p.segment_distance.map_or(Frame::Null, Frame::Double),
        ),
        (
            "assigned_segment",
            super::opt_int(p.assigned_segment.map(u64::from)),
        ),
        ("propensity", Frame::Double(p.propensity)),
        ("attributes", Frame::Map(attributes)),
        ("features", Frame::Map(features)),
    ])
}

/// Sets attributes of a customer, creating the profile if needed. A value that reads as a
/// finite number is stored as a number, anything else as text. Replies the new version.
///
/// # Format
///
/// ```text
/// PROFILE.SET customer field value [field value ...]
///
/// *6\r\n$11\r\nPROFILE.SET\r\n$3\r\nc42\r\n$3\r\nage\r\n$2\r\n34\r\n$6\r\nregion\r\n$5\r\nnorth\r\n
/// -> :4\r\n
/// error: -ERR invalid argument attribute name: "" must not be empty\r\n
/// ```
#[derive(Debug)]
pub(crate) struct Set {
    customer: String,
    attrs: Vec<(String, AttrValue)>,
}

impl Set {
    fn parse(args: &mut Args) -> Result<Set, CommandError> {
        let customer = args.text("customer")?;
        if args.remaining() % 2 != 0 {
            return Err(args.arity_error());
        }
        let mut attrs = Vec::with_capacity(args.remaining() / 2);
        while let Some(name) = args.next() {
            let name = utf8("field", name)?;
            let value = args.text("value")?;
            attrs.push((name, AttrValue::from_text(&value)));
        }
        Ok(Set { customer, attrs })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let version = ctx.server.db.set_attributes(&self.customer, self.attrs)?;
        Ok(super::int(version))
    }
}
