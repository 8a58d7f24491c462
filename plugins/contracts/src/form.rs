//! `application/x-www-form-urlencoded` bodies, read one way by both sides.
//!
//! The login plugin checks the password of the name it reads from the form, and the host's
//! login limiter counts a failure against the name it reads: if the two readings ever
//! differed (a doubled field, an odd escape, a content type one side accepts and the other
//! does not), one name would be counted and another checked. Both go through [`is_form`]
//! and [`Form::required`], so any fix to how a login is read is made here, for both.

/// The media type of a urlencoded form.
///
/// ```
/// assert_eq!(micro_api_contracts::form::FORM_MEDIA_TYPE, "application/x-www-form-urlencoded");
/// ```
pub const FORM_MEDIA_TYPE: &str = "application/x-www-form-urlencoded";

/// Whether a `Content-Type` value is of `media_type`, parameters such as `; charset=utf-8`
/// aside (case-insensitive, spaces around it trimmed).
///
/// ```
/// use micro_api_contracts::form::has_media_type;
/// assert!(has_media_type("Application/JSON; charset=utf-8", "application/json"));
/// assert!(!has_media_type("application/jsonx", "application/json"));
/// ```
pub fn has_media_type(content_type: &str, media_type: &str) -> bool {
    let essence = content_type
        .split_once(';')
        .map_or(content_type, |(essence, _)| essence);
    essence.trim().eq_ignore_ascii_case(media_type)
}

/// Whether a `Content-Type` value says the body is a urlencoded form.
///
/// ```
/// use micro_api_contracts::form::is_form;
/// assert!(is_form("application/x-www-form-urlencoded; charset=utf-8"));
/// assert!(!is_form("multipart/form-data; boundary=x"));
/// ```
pub fn is_form(content_type: &str) -> bool {
    has_media_type(content_type, FORM_MEDIA_TYPE)
}

/// The fields of a urlencoded body, in order.
///
/// ```
/// use micro_api_contracts::form::Form;
/// let form = Form::parse(b"userName=micro&pwd=a+b%21");
/// assert_eq!(form.get("pwd"), Some("a b!"));
/// assert_eq!(form.0.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// Parses a urlencoded body (`a=1&b=x+y`); invalid UTF-8 is replaced, never an error.
    ///
    /// ```
    /// use micro_api_contracts::form::Form;
    /// assert_eq!(Form::parse(b"a=%ff").get("a"), Some("\u{fffd}"));
    /// ```
    pub fn parse(body: &[u8]) -> Self {
        Self(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of the field `name`, if present (a later copy of the field is
    /// ignored).
    ///
    /// ```
    /// use micro_api_contracts::form::Form;
    /// assert_eq!(Form::parse(b"a=1&a=2").get("a"), Some("1"));
    /// assert_eq!(Form::parse(b"a=1").get("b"), None);
    /// ```
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value of the field `name`, refused when missing or empty: the value a
    /// plugin acts on, and so the one the host counts a login against.
    ///
    /// ```
    /// use micro_api_contracts::form::{Form, MissingField};
    /// let form = Form::parse(b"userName=micro&pwd=");
    /// assert_eq!(form.required("userName"), Ok("micro"));
    /// assert_eq!(form.required("pwd"), Err(MissingField("pwd".into())));
    /// ```
    pub fn required(&self, name: &str) -> Result<&str, MissingField> {
        self.get(name)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| MissingField(name.to_owned()))
    }
}

/// A form field that is missing or empty (the SDK answers it 400, naming the field).
///
/// ```
/// use micro_api_contracts::form::MissingField;
/// assert_eq!(MissingField("pwd".into()).to_string(), "the field `pwd` is required");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the field `{0}` is required")]
pub struct MissingField(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_non_empty_field_is_the_one_read() {
        let form = Form::parse(b"pwd=1&userName=mi%63ro&userName=other");
        assert_eq!(form.required("userName"), Ok("micro"));
        // An empty first copy is refused, not skipped for the next one: the plugin and the
        // host must never settle on different copies.
        let form = Form::parse(b"userName=&userName=micro");
        assert!(form.required("userName").is_err());
        assert_eq!(Form::parse(b"").0, vec![]);
        assert_eq!(
            Form::parse(b"a&=b&c=").0,
            [("a", ""), ("", "b"), ("c", "")]
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .to_vec()
        );
    }

    #[test]
    fn only_urlencoded_bodies_are_forms() {
        for yes in [
            "application/x-www-form-urlencoded",
            "APPLICATION/X-WWW-FORM-URLENCODED",
            " application/x-www-form-urlencoded ; charset=utf-8",
            "application/x-www-form-urlencoded;",
        ] {
            assert!(is_form(yes), "{yes:?}");
        }
        for no in [
            "",
            "application/json",
            "application/x-www-form-urlencodedx",
            "text/plain; application/x-www-form-urlencoded",
            "multipart/form-data",
        ] {
            assert!(!is_form(no), "{no:?}");
        }
    }
}
