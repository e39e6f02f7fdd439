//! `application/x-www-form-urlencoded` request bodies.

use zeroize::Zeroizing;

/// A form body being built; wiped from memory when dropped, as it may hold
/// secrets.
#[derive(Default)]
pub(crate) struct Form {
    pairs: Vec<(String, Zeroizing<String>)>,
}

impl Form {
    pub(crate) fn push(&mut self, name: &str, value: &str) {
        self.pairs
            .push((name.to_owned(), Zeroizing::new(value.to_owned())));
    }

    /// Form-URL-encodes one value (RFC 6749 Appendix B).
    pub(crate) fn encode(value: &str) -> String {
        form_urlencoded::byte_serialize(value.as_bytes()).collect()
    }

    /// The encoded body.
    pub(crate) fn finish(&self) -> String {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.pairs {
            serializer.append_pair(name, value);
        }
        serializer.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_rfc_6749_appendix_b() {
        let mut form = Form::default();
        form.push("grant_type", "client_credentials");
        form.push("scope", "read write:all");
        form.push("odd", "a+b&c=d/é");
        assert_eq!(
            form.finish(),
            "grant_type=client_credentials&scope=read+write%3Aall&odd=a%2Bb%26c%3Dd%2F%C3%A9"
        );
        assert_eq!(Form::encode("id:with space"), "id%3Awith+space");
    }
}
