//! The log line format: one JSON object per event with `timestamp`, `level`, `target`,
//! `message` and the event's fields, plus `plugin`, `trace_id` and `span_id` taken from the
//! spans the event happened in, so every line of a request (on every node) can be found by
//! its trace id.
//!
//! [`SpanTags`] remembers the few span fields a line needs (`plugin`, `trace_id`) when a
//! span is created or records them, instead of re-reading formatted span fields per line;
//! so the fmt layer formats no span fields at all ([`NoSpanFields`]).

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The fields of a span a log line inherits.
#[derive(Default)]
struct Tags {
    plugin: Option<String>,
    trace_id: Option<String>,
}

impl Visit for Tags {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "plugin" | "plugin.name" => self.plugin = Some(value.to_string()),
            "trace_id" => self.trace_id = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if matches!(field.name(), "plugin" | "plugin.name" | "trace_id") {
            // `%value` fields arrive here: their Display output, without quotes.
            self.record_str(field, &format!("{value:?}"));
        }
    }
}

/// Records [`Tags`] on every span the log filter lets through.
pub struct SpanTags;

impl<S> Layer<S> for SpanTags
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut tags = Tags::default();
        attrs.record(&mut tags);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(tags);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(tags) = span.extensions_mut().get_mut::<Tags>()
        {
            values.record(tags);
        }
    }
}

/// The fmt layer's span field format: nothing. Its default formats every field of every
/// span as the span is created (with `Debug`, ANSI colours and all: about 5% of a hello
/// request's CPU) into text no [`JsonLines`] line reads.
pub struct NoSpanFields;

impl<'writer> FormatFields<'writer> for NoSpanFields {
    fn format_fields<R: RecordFields>(&self, _writer: Writer<'writer>, _fields: R) -> fmt::Result {
        Ok(())
    }
}

/// An event's fields as JSON values.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

/// The JSON line format (see the module comment).
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        event.record(&mut Fields(&mut line));
        if let Some(scope) = ctx.event_scope() {
            let mut leaf = None;
            for span in scope {
                leaf.get_or_insert_with(|| span.id());
                let extensions = span.extensions();
                let Some(tags) = extensions.get::<Tags>() else {
                    continue;
                };
                if let Some(trace_id) = &tags.trace_id {
                    line.entry("trace_id")
                        .or_insert_with(|| trace_id.as_str().into());
                }
                if let Some(plugin) = &tags.plugin {
                    line.entry("plugin")
                        .or_insert_with(|| plugin.as_str().into());
                }
            }
            if let Some(leaf) = leaf {
                // Exported, the span's OpenTelemetry id (as the collector shows it); else ours.
                let span_id = match super::setup::otel_ids(&leaf) {
                    Some((trace_id, span_id)) => {
                        line.insert("trace_id".into(), trace_id.into());
                        span_id
                    }
                    None => format!("{:016x}", leaf.into_u64()),
                };
                line.insert("span_id".into(), span_id.into());
            }
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}
