package eventing

// DecodePod is how Decode unmarshals Resource-mode data, for FuzzDecodeMatchesEncodingJSON.
var DecodePod = decodePod

// DNS1123Label and DNS1123Subdomain are Decode's checks of a namespace and a name.
var DNS1123Label, DNS1123Subdomain = dns1123Label, dns1123Subdomain

// MaxDiscardBytes is how much of a body over MaxBodyBytes is read on before its 413.
const MaxDiscardBytes = maxDiscardBytes
