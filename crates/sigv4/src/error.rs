//! The one error type of the verifier, with the AWS error code and HTTP status each case maps to.
//!
//! Variants are typed where they arise (so callers and tests can match on the case), while the
//! wire classification lives in [`SigV4Error::aws_code`] and [`SigV4Error::http_status`], so the
//! API crate and the proxy map every failure the same way. The `Display` text is the message AWS
//! sends for the same failure, so it can be returned to clients verbatim.

/// Why a request failed SigV4 verification.
///
/// The `Display` output is the client-facing message in AWS's wording. Some variants carry extra
/// fields for server-side logs only (never for the response body): the canonical request of a
/// signature mismatch, for instance, is what a human needs to debug a client's signer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigV4Error {
    /// Neither an `Authorization` header nor presigned query parameters were present.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,

    /// The signature material is malformed or incomplete (missing parameters, bad date format,
    /// unsigned `host`, ...). The message names what is wrong, in AWS's style.
    #[error("{message}")]
    IncompleteSignature {
        /// Client-facing explanation.
        message: String,
    },

    /// The request is signed with an algorithm other than SigV4's `AWS4-HMAC-SHA256` and SigV4A's
    /// `AWS4-ECDSA-P256-SHA256`, which this verifier does not implement.
    #[error("Unsupported AWS 'algorithm': '{algorithm}'.")]
    UnsupportedAlgorithm {
        /// The algorithm the client asked for.
        algorithm: String,
    },

    /// The access key id is not known to the [`crate::SecretLookup`].
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient {
        /// The access key id from the credential scope (safe to log: it is not a secret).
        access_key_id: String,
    },

    /// The signature does not match the one computed from the request. For SigV4A this also
    /// covers a `Signature` that is not a hex-encoded DER ECDSA signature at all.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check \
         your AWS Secret Access Key and signing method. Consult the service documentation for \
         details."
    )]
    SignatureDoesNotMatch {
        /// The canonical request the server computed, for logs. Security-token values are
        /// redacted, so its hash will not match the hash inside `string_to_sign` when a token
        /// was present.
        canonical_request: String,
        /// The string to sign the server computed, for logs.
        string_to_sign: String,
    },

    /// The request time is too far in the past (or a presigned URL has expired).
    #[error("{message}")]
    SignatureExpired {
        /// AWS-style text: `Signature expired: <time> is now earlier than <bound> (...)`.
        message: String,
    },

    /// The request time is too far in the future.
    #[error("{message}")]
    SignatureNotYetCurrent {
        /// AWS-style text: `Signature not yet current: <time> is still later than <bound> (...)`.
        message: String,
    },

    /// The credential scope does not fit this endpoint: wrong service, wrong region, a date that
    /// differs from the request date, or a bad terminator.
    #[error("{message}")]
    InvalidCredentialScope {
        /// Client-facing explanation, e.g. `Credential should be scoped to correct service: 'vpc-lattice'.`
        message: String,
    },

    /// A SigV4A request's region set (`X-Amz-Region-Set`) does not include the region this
    /// endpoint serves: the SigV4A counterpart of a credential scope with the wrong region.
    #[error("The region set '{region_set}' in the request does not include the region '{region}'.")]
    RegionSetMismatch {
        /// The region set as the client sent it.
        region_set: String,
        /// The region the verifier required ([`crate::VerifyOptions::region`]).
        region: String,
    },

    /// A signed `x-amz-content-sha256` header carries a digest that is not the digest of the
    /// body received, so the body was altered (or truncated) after signing.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    ContentSha256Mismatch {
        /// The digest the client declared.
        provided: String,
        /// The digest of the body the server received.
        computed: String,
    },
}

impl SigV4Error {
    /// The AWS error code (the `__type` / `x-amzn-ErrorType` value) for this failure.
    pub fn aws_code(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::IncompleteSignature { .. } | Self::UnsupportedAlgorithm { .. } => {
                "IncompleteSignatureException"
            }
            Self::UnrecognizedClient { .. } => "UnrecognizedClientException",
            Self::SignatureDoesNotMatch { .. }
            | Self::SignatureExpired { .. }
            | Self::SignatureNotYetCurrent { .. }
            | Self::InvalidCredentialScope { .. }
            | Self::RegionSetMismatch { .. } => "InvalidSignatureException",
            // S3 is the only AWS service that defines this check; we borrow its code.
            Self::ContentSha256Mismatch { .. } => "XAmzContentSHA256Mismatch",
        }
    }

    /// The HTTP status for this failure.
    ///
    /// REST-JSON services (VPC Lattice, API Gateway, Signer, ...) answer every authentication
    /// failure with 403, including `IncompleteSignatureException`, which the older Query and
    /// JSON 1.0 services send with 400. The digest mismatch keeps S3's 400 because it reports a
    /// corrupted body rather than an identity problem.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::ContentSha256Mismatch { .. } => 400,
            _ => 403,
        }
    }

    pub(crate) fn incomplete(message: impl Into<String>) -> Self {
        Self::IncompleteSignature {
            message: message.into(),
        }
    }

    pub(crate) fn scope(message: impl Into<String>) -> Self {
        Self::InvalidCredentialScope {
            message: message.into(),
        }
    }
}
