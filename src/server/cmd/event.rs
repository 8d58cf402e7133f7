//! `EVENT.*`: writing events.

use super::args::show;
use super::{ArgDoc, ArgKind, Args, Command, CommandError, Ctx, Reply, Spec};
use crate::event::parse_timestamp;
use crate::event::{wall_clock_ms, Event, EventKind, InvalidEvent};
use crate::pipeline::Ack;
use crate::server::frame::Frame;

/// `EVENT.ADD`.
pub(crate) const ADD: Spec = Spec {
    name: "EVENT.ADD",
    arity: -3,
    flags: &["write", "fast"],
    key: 1,
    group: "event",
    since: "0.1.0",
    summary: "Records an event of a customer: updates their profile and the models in one commit.",
    args: &[
        ArgDoc::new("customer", ArgKind::Key),
        ArgDoc::new("kind", ArgKind::String),
        ArgDoc::new("value", ArgKind::Double).optional(),
        ArgDoc::new("category", ArgKind::String)
            .token("CATEGORY")
            .optional(),
        ArgDoc::new("item", ArgKind::String)
            .token("ITEM")
            .optional(),
        ArgDoc::new("time", ArgKind::String).token("TS").optional(),
        ArgDoc::new("event_id", ArgKind::String)
            .token("ID")
            .optional(),
    ],
    subcommands: &[],
    parse: |args| Add::parse(args).map(Command::EventAdd),
    container: "",
};

/// Records one event. The reply comes once the event is committed; meanwhile the connection
/// goes on parsing (see the pipelining notes in [`crate::server`]).
///
/// `kind` is one of `view click search cart_add purchase refund like comment share rating
/// complaint`; `value` is required for `purchase`, `refund` and `rating`. `TS` is unix
/// milliseconds or an RFC 3339 date-time, and defaults to the server's clock (an event dated by
/// the clock more than a horizon after the store's latest event time is counted and logged: see
/// `INFO stats` `persona_clock_events_after_history`). `ID` is the idempotency key: an event
/// whose id was already applied changes nothing and is acknowledged as a duplicate. Without
/// `ID` every call is a new event, applied once. `ITEM` names the product or content (at most 128
/// bytes).
///
/// # Format
///
/// ```text
/// EVENT.ADD customer kind [value] [CATEGORY category] [ITEM item] [TS time] [ID event_id]
///
/// *4\r\n$9\r\nEVENT.ADD\r\n$3\r\nc42\r\n$8\r\npurchase\r\n$4\r\n19.9\r\n
///
/// RESP3: %4\r\n$7\r\nversion\r\n:1\r\n$7\r\nsegment\r\n_\r\n
///        $10\r\npropensity\r\n,0.5\r\n$9\r\nduplicate\r\n#f\r\n
/// RESP2: *8\r\n$7\r\nversion\r\n:1\r\n$7\r\nsegment\r\n$-1\r\n
///        $10\r\npropensity\r\n$3\r\n0.5\r\n$9\r\nduplicate\r\n:0\r\n
/// error: -ERR invalid event: field value: -3.5 for kind purchase must be >= 0\r\n
/// ```
#[derive(Debug)]
pub(crate) struct Add {
    event: Event,
    /// The time was the server's clock (no `TS`).
    clock_time: bool,
}

impl Add {
    /// Reads the arguments into an event (validated later, by the store).
    fn parse(args: &mut Args) -> Result<Add, CommandError> {
        let customer = text_field("customer_id", args.required()?)?;
        let kind_bytes = args.required()?;
        let kind = EventKind::parse(&text_field("kind", kind_bytes)?).map_err(invalid)?;
        let mut event = Event::new(customer, wall_clock_ms(), kind);
        let mut next = args.next();
        if let Some(value) = next.take_if(|word| !is_option(word)) {
            event.value = Some(parse_value(&value)?);
            next = args.next();
        }
        let (mut category, mut item, mut ts, mut id) = (None, None, None, None);
        while let Some(word) = next {
            let slot = match word.to_ascii_uppercase().as_slice() {
                b"CATEGORY" => &mut category,
                b"ITEM" => &mut item,
                b"TS" => &mut ts,
                b"ID" => &mut id,
                _ => {
                    return Err(args.syntax(format!(
                        "unknown option '{}'; expected CATEGORY, ITEM, TS or ID",
                        show(&word)
                    )))
                }
            };
            let name = show(&word).to_ascii_uppercase();
            if slot.is_some() {
                return Err(args.syntax(format!("{name} given twice")));
            }
            *slot = Some(args.option_value(&name)?);
            next = args.next();
        }
        if let Some(bytes) = category {
            event.category = Some(text_field("category", bytes)?);
        }
        if let Some(bytes) = item {
            event.item = Some(text_field("item", bytes)?);
        }
        if let Some(bytes) = id {
            event.event_id = Some(text_field("event_id", bytes)?);
        }
        let clock_time = ts.is_none();
        if let Some(bytes) = ts {
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                invalid(InvalidEvent::new(
                    "timestamp",
                    show(&bytes),
                    "must be unix milliseconds or an RFC 3339 date-time",
                ))
            })?;
            event.timestamp_ms = parse_timestamp(text).map_err(invalid)?;
        }
        Ok(Add { event, clock_time })
    }

    /// Queues the event; the connection sends the reply once it is committed.
    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Reply {
        // Only an event the store will not refuse as invalid counts (the store validates it
        // again, with every other write).
        if self.clock_time && self.event.validate().is_ok() {
            ctx.server.clock_event(self.event.timestamp_ms);
        }
        // A cluster node's events go through their partition's log (`cluster/log.rs`).
        if let Some(writes) = super::cluster::log_of(ctx) {
            if let Err(e) = self.event.validate() {
                return Reply::Frame(invalid(e).into());
            }
            let item = crate::pipeline::Item::Event(self.event);
            let pending = super::cluster::through_log(writes.as_ref(), item, ctx.notify.clone());
            return Reply::InFlight(pending, ack_reply);
        }
        let queued = match ctx.notify.clone() {
            Some(notify) => ctx.server.db.ingest_notify(self.event, notify),
            None => ctx.server.db.ingest_async(self.event),
        };
        match queued {
            Ok(pending) => Reply::InFlight(pending, ack_reply),
            Err(e) => Reply::Frame(CommandError::Db(e).into()),
        }
    }
}

/// The reply to an acknowledged (or failed) event.
fn ack_reply(result: crate::Result<Ack>) -> Frame {
    match result {
        Ok(ack) => Frame::map_from([
            ("version", super::int(ack.version)),
            ("segment", super::opt_int(ack.segment.map(u64::from))),
            ("propensity", Frame::Double(ack.propensity)),
            ("duplicate", Frame::Boolean(ack.duplicate)),
        ]),
        Err(e) => CommandError::Db(e).into(),
    }
}

fn is_option(word: &[u8]) -> bool {
    [&b"CATEGORY"[..], b"ITEM", b"TS", b"ID"]
        .iter()
        .any(|option| option.eq_ignore_ascii_case(word))
}

fn parse_value(bytes: &[u8]) -> Result<f64, CommandError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse::<f64>().ok())
        .ok_or_else(|| {
            invalid(InvalidEvent::new(
                "value",
                show(bytes),
                "must be a number (or an option: CATEGORY, ITEM, TS or ID)",
            ))
        })
}

/// An event field that must be UTF-8.
fn text_field(field: &'static str, bytes: Vec<u8>) -> Result<String, CommandError> {
    String::from_utf8(bytes).map_err(|e| {
        invalid(InvalidEvent::new(
            field,
            show(e.as_bytes()),
            "must be valid UTF-8",
        ))
    })
}

fn invalid(e: InvalidEvent) -> CommandError {
    CommandError::Db(e.into())
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn add(words: &[&str]) -> Result<Event, String> {
        let argv = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        match parse(argv, true, None) {
            Ok(Command::EventAdd(add)) => Ok(add.event),
            Ok(_) => Err("another command".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn all_fields_are_read() -> Result<(), String> {
        let e = add(&[
            "EVENT.ADD",
            "c1",
            "purchase",
            "19.5",
            "category",
            "books",
            "TS",
            "1767225600000",
            "Id",
            "o-1",
        ])?;
        assert_eq!(e.customer_id, "c1");
        assert_eq!(e.kind, EventKind::Purchase);
        assert_eq!(e.value, Some(19.5));
        assert_eq!(e.category.as_deref(), Some("books"));
        assert_eq!(e.timestamp_ms, 1_767_225_600_000);
        assert_eq!(e.event_id.as_deref(), Some("o-1"));
        Ok(())
    }

    #[test]
    fn ts_takes_rfc_3339_and_milliseconds_and_no_id_means_no_identity() -> Result<(), String> {
        let rfc = add(&["EVENT.ADD", "c1", "click", "TS", "1997-03-04T05:06:07Z"])?;
        assert_eq!(rfc.timestamp_ms, 857_451_967_000);
        let ms = add(&["EVENT.ADD", "c1", "click", "TS", "857451967000"])?;
        assert_eq!(ms.timestamp_ms, 857_451_967_000);
        assert_eq!(rfc.event_id, None);
        Ok(())
    }

    #[test]
    fn item_is_an_option_in_any_order() -> Result<(), String> {
        let e = add(&[
            "EVENT.ADD",
            "c1",
            "purchase",
            "9.5",
            "item",
            "sku-1",
            "CATEGORY",
            "shoes",
        ])?;
        assert_eq!(e.item.as_deref(), Some("sku-1"));
        assert_eq!(e.category.as_deref(), Some("shoes"));
        let e = add(&["EVENT.ADD", "c1", "view", "ITEM", "sku-2"])?;
        assert_eq!((e.item.as_deref(), e.value), (Some("sku-2"), None));
        assert!(add(&["EVENT.ADD", "c1", "view", "ITEM", "a", "ITEM", "b"])
            .unwrap_err()
            .contains("ITEM given twice"));
        Ok(())
    }

    #[test]
    fn value_is_optional_and_time_defaults_to_now() -> Result<(), String> {
        let e = add(&["EVENT.ADD", "c1", "click", "CATEGORY", "shoes"])?;
        assert_eq!(e.value, None);
        assert_eq!(e.category.as_deref(), Some("shoes"));
        assert!(e.timestamp_ms > 1_767_225_600_000 - 365 * 86_400_000);
        Ok(())
    }

    #[test]
    fn bad_arguments_are_named() {
        let err = |words: &[&str]| add(words).unwrap_err();
        assert!(err(&["EVENT.ADD", "c", "buy"])
            .starts_with("ERR invalid event: field kind: buy must be one of: view, click"));
        assert_eq!(
            err(&["EVENT.ADD", "c", "view", "abc"]),
            "ERR invalid event: field value: abc must be a number (or an option: CATEGORY, ITEM, TS or ID)"
        );
        assert_eq!(
            err(&["EVENT.ADD", "c", "view", "1", "x"]),
            "ERR syntax error: unknown option 'x'; expected CATEGORY, ITEM, TS or ID; usage: \
             EVENT.ADD customer kind [value] [CATEGORY category] [ITEM item] [TS time] [ID event_id]"
        );
        assert!(err(&["EVENT.ADD", "c", "view", "TS"])
            .starts_with("ERR syntax error: TS needs a value; usage: EVENT.ADD"));
        assert!(err(&["EVENT.ADD", "c", "view", "ts", "1", "TS", "2"])
            .starts_with("ERR syntax error: TS given twice"));
        assert!(err(&["EVENT.ADD", "c", "view", "TS", "soon"]).starts_with(
            "ERR invalid event: field timestamp: soon is neither unix milliseconds nor an RFC 3339"
        ));
    }
}
