//! History-Info (RFC 7044) beside Diversion (RFC 5806): many trunks and
//! phones read only one of the two, so a diverted leg carries both, built
//! from the same chain of diversions.

use crate::sip::params;

/// The RFC 4458 cause a Diversion reason maps to.
fn cause(reason: &str) -> u16 {
    match reason {
        "unconditional" => 302,
        "user-busy" => 486,
        "no-answer" => 408,
        "unavailable" => 503,
        "deflection" => 480,
        _ => 404,
    }
}

/// History-Info values, oldest first, for a request reaching `target`
/// (a SIP URI) after `diversions` (Diversion header values, newest first):
/// the first diverting user with index 1, then each user the call was
/// diverted to, the last one `target`, each a child of the one before,
/// carrying the RFC 4458 `cause` URI parameter of its diversion (as RFC
/// 7544 maps Diversion) and `mp` (the target was mapped by a diversion).
pub(crate) fn history_info(diversions: &[String], target: &str) -> Vec<String> {
    let chain: Vec<(String, &str)> = diversions
        .iter()
        .rev()
        .map(|d| {
            (
                params::uri_of(d).to_owned(),
                params::header_param(d, "reason").unwrap_or("unknown"),
            )
        })
        .collect();
    let Some((first, _)) = chain.first() else {
        return Vec::new();
    };
    let mut out = vec![format!("<{first}>;index=1")];
    let mut index = String::from("1");
    for (i, (_, reason)) in chain.iter().enumerate() {
        let to = chain.get(i + 1).map(|(u, _)| u.as_str()).unwrap_or(target);
        let parent = index.clone();
        index.push_str(".1");
        out.push(format!(
            "<{to};cause={}>;index={index};mp={parent}",
            cause(reason)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_diversion_means_no_history_info() {
        assert!(history_info(&[], "sip:2003@d").is_empty());
    }

    #[test]
    fn one_diversion_names_the_diverting_user_and_the_target_with_its_cause() {
        let h = history_info(
            &["<sip:2002@d>;reason=user-busy;counter=1".to_owned()],
            "sip:2003@d",
        );
        assert_eq!(
            h,
            [
                "<sip:2002@d>;index=1",
                "<sip:2003@d;cause=486>;index=1.1;mp=1",
            ]
        );
    }

    #[test]
    fn a_chain_of_diversions_is_listed_oldest_first() {
        // Newest first, as Diversion headers are: 2002 -> 2003 (no answer),
        // then 2003 -> 2004 (unconditional).
        let h = history_info(
            &[
                "<sip:2003@d>;reason=unconditional;counter=1".to_owned(),
                "<sip:2002@d>;reason=no-answer;counter=1".to_owned(),
            ],
            "sip:2004@d",
        );
        assert_eq!(
            h,
            [
                "<sip:2002@d>;index=1",
                "<sip:2003@d;cause=408>;index=1.1;mp=1",
                "<sip:2004@d;cause=302>;index=1.1.1;mp=1.1",
            ]
        );
    }
}
