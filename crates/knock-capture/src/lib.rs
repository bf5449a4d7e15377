//! AF_PACKET capture with a kernel cBPF filter built from the doors, and frame decoding into
//! knock events.
