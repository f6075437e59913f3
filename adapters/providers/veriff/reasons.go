package veriff

import "strconv"

// reasonCodes maps Veriff's verification.reasonCode onto normalized reason codes, from
// Veriff's "Verification session decision codes" and "Granular reason codes" tables
// (1xx and 5xx: declined; 2xx: resubmission requested). Codes not listed become
// VERIFF_<code>. Several Veriff codes share a normalized code where they mean the same to a
// policy (e.g. every kind of document tampering).
var reasonCodes = map[int64]string{
	101: "DOCUMENT_NOT_PHYSICAL",       // Physical document not used
	102: "DOCUMENT_TAMPERED",           // Suspected document tampering
	103: "FACE_MISMATCH",               // Person showing the document does not appear to match document photo
	104: "NAME_MISMATCH",               // Name entered does not match name on document
	105: "SUSPICIOUS_BEHAVIOUR",        // Suspicious behaviour
	106: "KNOWN_FRAUD",                 // Known fraud
	107: "VELOCITY_ABUSE",              // Velocity/abuse
	108: "DUPLICATE_USER",              // Velocity/abuse duplicated end-user
	109: "DUPLICATE_DEVICE",            // Velocity/abuse duplicated device
	110: "DUPLICATE_DOCUMENT",          // Velocity/abuse duplicated ID
	111: "SESSION_HIJACKED",            // Session fraudulently accessed
	112: "RESTRICTED_LOCATION",         // Restricted IP location
	113: "IDENTITY_FARMING",            // Suspicious behaviour - Identity Farming
	120: "REFERENCE_FACE_MISMATCH",     // Person on the portrait does not appear to match reference photo
	121: "USER_ID_MISSING",             // User ID missing
	122: "REFERENCE_NOT_FOUND",         // No reference found
	123: "REGISTRY_CHECK_FAILED",       // Unable to pass registry checks
	124: "DUPLICATE_FACE",              // Face already exists in the face collection
	126: "PEP_MATCH",                   // Potential PEP match
	127: "BLOCKLIST_FACE_MATCH",        // Face match with blocklist
	128: "END_USER_ID_MISMATCH",        // End User ID mismatch
	129: "INVALID_WORKFLOW",            // Invalid workflow
	201: "MEDIA_MISSING",               // Video and/or photos missing
	202: "FACE_NOT_VISIBLE",            // Face not clearly visible
	203: "DOCUMENT_NOT_FULLY_VISIBLE",  // Full document not visible
	204: "POOR_IMAGE_QUALITY",          // Poor image quality
	205: "DOCUMENT_DAMAGED",            // Document damaged
	206: "DOCUMENT_TYPE_NOT_SUPPORTED", // Document type not supported
	207: "DOCUMENT_EXPIRED",            // Document expired
	208: "SELFIE_MISSING",              // Selfie missing
	209: "DOCUMENT_PHOTO_MISSING",      // Document photo missing
	501: "HIGH_FRAUD_PROBABILITY",      // High probability of fraudulent attempt
	502: "MULTIPLE_PARTIES",            // Multiple parties present in session
	503: "ATTEMPTED_DECEIT",            // Attempted deceit
	504: "DOCUMENT_ON_SCREEN",          // Attempted deceit, device screen used
	505: "DOCUMENT_PRINTOUT",           // Attempted deceit, printout used
	506: "DOCUMENT_TAMPERED",           // Presented document tampered
	507: "DOCUMENT_TAMPERED",           // Presented document tampered, data cross reference
	508: "DOCUMENT_TAMPERED",           // Presented document tampered, document similarity to specimen
	509: "FACE_MISMATCH",               // Person showing the document does not match document photo
	510: "DOCUMENT_TYPE_NOT_SUPPORTED", // Presented document type not supported
	511: "DOCUMENT_EXPIRED",            // Presented document expired
	515: "FACE_ON_SCREEN",              // Attempted deceit, device screen used for face image
	526: "PHOTOS_STREAMED",             // Attempted deceit, photos streamed
	527: "PROOF_OF_ADDRESS_MISSING",    // Unable to collect proof of address data
	528: "PROOF_OF_ADDRESS_TOO_OLD",    // Proof of address issue date too old
	530: "AGE_UNDER_13",                // Person is under 13 years old
	531: "AGE_UNDER_14",                // ... under 14
	532: "AGE_UNDER_16",                // ... under 16
	533: "AGE_UNDER_18",                // ... under 18
	534: "AGE_UNDER_20",                // ... under 20
	535: "AGE_UNDER_21",                // ... under 21
	536: "AGE_UNDER_25",                // ... under 25
	537: "PORTRAIT_CROP_FAILED",        // Unable to perform document media portrait cropping
	539: "RESUBMISSION_LIMIT_EXCEEDED", // Resubmission limit exceeded
}

// reasonFor returns the normalized reason code for a Veriff reasonCode.
func reasonFor(code int64) string {
	if r, ok := reasonCodes[code]; ok {
		return r
	}
	return "VERIFF_" + strconv.FormatInt(code, 10)
}
