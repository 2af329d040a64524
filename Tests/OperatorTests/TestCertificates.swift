// Test-only certificates for the TLS test (never used outside Tests/): a CA, a server certificate
// for 127.0.0.1 and a client certificate, EC P-256, valid for 100 years. Made with:
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 36500 -subj /CN=switchyard-test-ca
//   openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1
//   openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 36500 \
//     -extfile <(printf "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
//   (the client certificate likewise, with /CN=switchyard-operator and extendedKeyUsage=clientAuth)
enum TestCertificates {
    static let caCertificate = """
        -----BEGIN CERTIFICATE-----
        MIIBkjCCATegAwIBAgIUZoBu+3GC4tJBkgIAEon3z8m78j0wCgYIKoZIzj0EAwIw
        HTEbMBkGA1UEAwwSc3dpdGNoeWFyZC10ZXN0LWNhMCAXDTI2MTIwMjAxMzAwNVoY
        DzIxMjYxMTA4MDEzMDA1WjAdMRswGQYDVQQDDBJzd2l0Y2h5YXJkLXRlc3QtY2Ew
        WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAR0dEUsTLOBOOvbu7HjM03WnvBrNboh
        Fp/LhnUJF3MunqZbF15q8YdHoAo83INV7Rh+5ZiCvscMBIW7ADnGTR+8o1MwUTAd
        BgNVHQ4EFgQURsF52zx508vVN7qnmfpn0kyr94gwHwYDVR0jBBgwFoAURsF52zx5
        08vVN7qnmfpn0kyr94gwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBG
        AiEApu5amsXEtovhHJu4VCp/U8saKsxk2fjja9ygR+OFiGoCIQDS8cLcombUKEcq
        YqVvpXF31SYeHBxPba3rIi8+m6URmA==
        -----END CERTIFICATE-----
        """
    static let serverCertificate = """
        -----BEGIN CERTIFICATE-----
        MIIBqTCCAU6gAwIBAgIUW30TKZCCY84AXoDZIGIR8PcyeqgwCgYIKoZIzj0EAwIw
        HTEbMBkGA1UEAwwSc3dpdGNoeWFyZC10ZXN0LWNhMCAXDTI2MTIwMjAxMzAwNVoY
        DzIxMjYxMTA4MDEzMDA1WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjO
        PQIBBggqhkjOPQMBBwNCAAQ3EQlYnCvFDzJzeh0sZ0X61rRcriwrAEDapH/fFIqq
        dOovudrxWlyV+oFeX8jRzEbZTq/XoTI0UDVjJpZmxgSEo3MwcTAaBgNVHREEEzAR
        hwR/AAABgglsb2NhbGhvc3QwEwYDVR0lBAwwCgYIKwYBBQUHAwEwHQYDVR0OBBYE
        FF/pMv8bYYOp6aIe2pfl90bngEqmMB8GA1UdIwQYMBaAFEbBeds8edPL1Te6p5n6
        Z9JMq/eIMAoGCCqGSM49BAMCA0kAMEYCIQD3NGw9a1UFqQkET96FQAvkFYPHifXI
        3ewGXDEyBtAaFgIhAPpP/SBNxCNmCWj+6nVKMIVGsXHAFajRlegVmSCedOG+
        -----END CERTIFICATE-----
        """
    static let serverKey = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgsq6CmB7c2aFFuhgJ
        kJv3hMNJ+5jUVn8H+jyomoU3SAShRANCAAQ3EQlYnCvFDzJzeh0sZ0X61rRcriwr
        AEDapH/fFIqqdOovudrxWlyV+oFeX8jRzEbZTq/XoTI0UDVjJpZmxgSE
        -----END PRIVATE KEY-----
        """
    static let clientCertificate = """
        -----BEGIN CERTIFICATE-----
        MIIBljCCATygAwIBAgIUW30TKZCCY84AXoDZIGIR8PcyeqkwCgYIKoZIzj0EAwIw
        HTEbMBkGA1UEAwwSc3dpdGNoeWFyZC10ZXN0LWNhMCAXDTI2MTIwMjAxMzAwNVoY
        DzIxMjYxMTA4MDEzMDA1WjAeMRwwGgYDVQQDDBNzd2l0Y2h5YXJkLW9wZXJhdG9y
        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEzXRw8i90j7fQcO5yIDSVTa3F/Xj
        gU8JSjUkRBydyDs4XpHf9EPDtMUC6Ur5b/5RT4tsHh+GPkSHxyOijPY776NXMFUw
        EwYDVR0lBAwwCgYIKwYBBQUHAwIwHQYDVR0OBBYEFHNJYnMUELzA+XUKcpc9Y9fJ
        d1WQMB8GA1UdIwQYMBaAFEbBeds8edPL1Te6p5n6Z9JMq/eIMAoGCCqGSM49BAMC
        A0gAMEUCIGIwSh/FCACpJKs9ZtvuiBQRPJz20sxPTo1N9RWZXSq4AiEAq7H52VSX
        /hmRPiTNtkH/7agEprtj6DqmjBKt6mLL9dE=
        -----END CERTIFICATE-----
        """
    static let clientKey = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg3A/0/rosPwNzWHZq
        dLLJ6IftxO4BwPB8/Qj0iSMzT+6hRANCAAQTNdHDyL3SPt9Bw7nIgNJVNrcX9eOB
        TwlKNSREHJ3IOzhekd/0Q8O0xQLpSvlv/lFPi2weH4Y+RIfHI6KM9jvv
        -----END PRIVATE KEY-----
        """
}
