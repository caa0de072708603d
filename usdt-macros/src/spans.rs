//! Spans for generated code, chosen so that a type error about a probe
//! argument is reported once, at the argument (or the declared type) the
//! user wrote.

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote_spanned};

/// The spans of the first and the last token of `tokens`.
pub(crate) fn first_and_last(tokens: &impl ToTokens) -> (Span, Span) {
    let mut tokens = tokens.to_token_stream().into_iter();
    let first = tokens.next().map_or_else(Span::call_site, |t| t.span());
    let last = tokens.last().map_or(first, |t| t.span());
    (first, last)
}

/// `TRAIT::__usdt_arg(&(VALUE))`, where `TRAIT` is a path to usdt-runtime's
/// `ProbeArg`: the value borrowed, whatever its precedence, and checked to
/// be a probe argument by a trait method, which reports an unsupported type
/// at the value with no note about a generic function's bounds. The probe
/// site's own `ProbeArg` bound then fails at the same span for the same
/// type, and is not reported a second time.
pub(crate) fn checked_arg(
    trait_path: &TokenStream,
    value: TokenStream,
    of: &impl ToTokens,
) -> TokenStream {
    trait_call(trait_path, "__usdt_arg", value, of)
}

/// `TRAIT::METHOD(&(VALUE))` spanned over `of`: the tokens take the span of
/// `of`'s first token, the closing ones that of its last, so the call and
/// its argument cover all of `of` without joining spans (which stable Rust
/// cannot do), and an unmet `Self: TRAIT` underlines all of `of`.
pub(crate) fn trait_call(
    trait_path: &TokenStream,
    method: &str,
    value: TokenStream,
    of: &impl ToTokens,
) -> TokenStream {
    let (first, last) = first_and_last(of);
    let trait_path = respanned(trait_path, first);
    let method = Ident::new(method, last);
    let value = in_group(Delimiter::Parenthesis, value, last);
    let call = in_group(
        Delimiter::Parenthesis,
        quote_spanned! {first=> &#value},
        last,
    );
    quote_spanned! {first=> #trait_path::#method #call}
}

/// `tokens` spanned over `of`: the last token takes the span of `of`'s last
/// token, every other that of its first.
pub(crate) fn spanned_over(tokens: &TokenStream, of: &impl ToTokens) -> TokenStream {
    let (first, last) = first_and_last(of);
    let mut trees: Vec<TokenTree> = respanned(tokens, first).into_iter().collect();
    if let Some(tree) = trees.last_mut() {
        match tree {
            TokenTree::Group(group) => group.set_span(last),
            other => other.set_span(last),
        }
    }
    trees.into_iter().collect()
}

/// `tokens` in a group of the given delimiter whose span is `span`.
fn in_group(delimiter: Delimiter, tokens: TokenStream, span: Span) -> Group {
    let mut group = Group::new(delimiter, tokens);
    group.set_span(span);
    group
}

/// `tokens` with every span set to `span`, so that an error about code
/// built from them points at the user's code rather than at the macro.
pub(crate) fn respanned(tokens: &impl ToTokens, span: Span) -> TokenStream {
    tokens
        .to_token_stream()
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                tree = TokenTree::Group(in_group(
                    group.delimiter(),
                    respanned(&group.stream(), span),
                    span,
                ));
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}
