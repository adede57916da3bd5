//! The redirect-URL allow-list of checkout sessions (`docs/dhmad-api.md` §3.12, §4.1).

use dhmad::ErrorCode;
use url::Url;

use crate::error::Refusal;

/// Allow-list check: HTTPS unless the host is `localhost`; then an exact match against an
/// allowed URL, query and fragment included (only what URL parsing normalises may differ: the
/// host's case, a default port). DHMAD leaves the rule unstated and its docs infer an exact
/// match: the strictest reading, so a redirect the sandbox takes is one DHMAD takes too.
pub fn check_redirect(redirect: &str, allowed: &[String]) -> Result<(), Refusal> {
    if allowed.is_empty() {
        return Err(Refusal::rule(
            ErrorCode::NoRedirectUrlsConfigured,
            "No redirect URLs are configured for this developer account",
        ));
    }
    let not_allowed = || {
        Refusal::rule(
            ErrorCode::RedirectUrlNotAllowed,
            "redirectUrl is not in the allowed list",
        )
    };
    let u = Url::parse(redirect.trim()).map_err(|_| not_allowed())?;
    let localhost = u.host_str() == Some("localhost");
    match u.scheme() {
        "https" => {}
        "http" if localhost => {}
        _ => {
            return Err(Refusal::rule(
                ErrorCode::RedirectUrlMustBeHttps,
                "redirectUrl must use HTTPS (http is only allowed for localhost)",
            ))
        }
    }
    if allowed
        .iter()
        .filter_map(|a| Url::parse(a.trim()).ok())
        .any(|a| a == u)
    {
        Ok(())
    } else {
        Err(not_allowed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_rules() {
        let allowed = vec![
            "http://localhost:3000/cb".to_owned(),
            "https://shop.tn/cb".to_owned(),
        ];
        assert!(check_redirect("http://localhost:3000/cb", &allowed).is_ok());
        assert!(check_redirect("https://shop.tn/cb", &allowed).is_ok());
        assert!(check_redirect("https://SHOP.tn:443/cb", &allowed).is_ok());
        let code = |r: Result<(), Refusal>| match r {
            Err(Refusal::Rule { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            code(check_redirect("http://shop.tn/cb", &allowed)),
            ErrorCode::RedirectUrlMustBeHttps
        );
        assert_eq!(
            code(check_redirect("http://127.0.0.1:3000/cb", &allowed)),
            ErrorCode::RedirectUrlMustBeHttps
        );
        assert_eq!(
            code(check_redirect("https://shop.tn/other", &allowed)),
            ErrorCode::RedirectUrlNotAllowed
        );
        for near in [
            "http://localhost:3000/cb?x=1",
            "https://shop.tn/cb#top",
            "https://shop.tn/cb/",
        ] {
            assert_eq!(
                code(check_redirect(near, &allowed)),
                ErrorCode::RedirectUrlNotAllowed,
                "{near}"
            );
        }
        assert_eq!(
            code(check_redirect("https://shop.tn/cb", &[])),
            ErrorCode::NoRedirectUrlsConfigured
        );
    }
}
