"""Credential shapes the value masker must catch, each in the context it leaked in, and
ordinary values it must leave alone. Shared by the masker tests and the pipeline test."""

from __future__ import annotations

RSA_BODY = (
    "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
    "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm\n"
)
PEM_RSA = f"-----BEGIN RSA PRIVATE KEY-----\n{RSA_BODY}-----END RSA PRIVATE KEY-----"
PEM_ENCRYPTED = (
    "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
    "DEK-Info: AES-128-CBC,3F17F5316E2BAC89BE5D1B2E4A1D3C7F\n\n"
    f"{RSA_BODY}-----END RSA PRIVATE KEY-----"
)
PEM_PGP = (
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\nComment: backup key\n\n"
    f"lQOYBGMq{RSA_BODY}=Xk7p\n-----END PGP PRIVATE KEY BLOCK-----"
)
PEM_OPENSSH = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----"
)
PEM_PKCS8_ENCRYPTED = (
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    "MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQIaWjdGYq4Ii0CAggA\n"
    "-----END ENCRYPTED PRIVATE KEY-----"
)
SERVICE_ACCOUNT_KEY = RSA_BODY.replace("\n", "\\n")
SERVICE_ACCOUNT = (
    '{"type": "service_account", "project_id": "demo-1", "private_key_id": "4f3a", '
    '"private_key": "-----BEGIN PRIVATE KEY-----\\n'
    + SERVICE_ACCOUNT_KEY
    + '-----END PRIVATE KEY-----\\n", "client_email": "svc@demo-1.iam.gserviceaccount.com"}'
)

# (what the masker sees, the secret that must not come out)
CAUGHT: list[tuple[str, str]] = [
    ("$2y$10$" + "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", "N9qo8uLOickgx2ZMR"),
    (
        "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
        "RdescudvJCsgt3ub",
    ),
    ("$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4", "nFNh2CVHVjNldF"),
    ("$6$rounds=5000$saltsalt$abcdefghijklmnopQRSTUV0123456789./", "abcdefghijklmnop"),
    ("$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7", "X3DX6M94c7o"),
    ("$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", "HqJZimcKQFAMYayB"),
    ("$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", "qjXMvbEw8oaL"),
    ("$7$C6..../....SodiumChloride$kBGj9fHznVYFQMEn/qDCfrDevf9YDtcDdKvEqHJLV8D", "kBGj9fHznVYFQ"),
    ("$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$YmFzZTY0aGFzaHZhbHVl", "YmFzZTY0aGFzaH"),
    ("pbkdf2_sha256$600000$s4ltS4lt$QmFzZTY0RW5jb2RlZEhhc2hWYWx1ZQ==", "QmFzZTY0RW5jb2Rl"),
    ("{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g5a7Ak", "W6ph5Mm5Pz8GgiUL"),
    ("{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=", "qUqP5cyxm6YcTAhz"),
    ("*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19", "2470C0C06DEE42FD1618"),
    (
        "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$U3RvcmVkS2V5U3RvcmVkS2V5:U2VydmVyS2V5U2VydmVyS2V5",
        "U3RvcmVkS2V5U3RvcmVk",
    ),
    (PEM_RSA, "KUpRKfFLfRYC9AIK"),
    (PEM_ENCRYPTED, "KUpRKfFLfRYC9AIK"),
    (PEM_PGP, "KUpRKfFLfRYC9AIK"),
    (PEM_OPENSSH, "b3BlbnNzaC1rZXktdjEA"),
    (PEM_PKCS8_ENCRYPTED, "MIIFHDBOBgkqhkiG9w0B"),
    (SERVICE_ACCOUNT, "KUpRKfFLfRYC9AIK"),
    (
        "PuTTY-User-Key-File-3: ssh-rsa\nPrivate-Lines: 2\n"
        "AAABAQCqGKukO1De7zhZj6+H0qtjTkVxwTCpvKe4eCZ0FPqri0cb2JZfXJ/DgYSF\n"
        "6vUpwmJG8wVQZKjeGcjDOL5UlsuusFncCzWBQ7RKNUSesmQRMSGkVb1/3j+skZ6U\n",
        "AAABAQCqGKukO1De7zhZ",
    ),
    (
        "AGE-SECRET-KEY-1QQPZRY9X8GF2TVDW0S3JN54KHCE6MUA7LQPZRY9X8GF2TVDW0S3JN54KHCE6",
        "QQPZRY9X8GF2TVDW0S3J",
    ),
    (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "dozjgNryP4J3jVmNHl0w",
    ),
    ("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("ghp_" + "A1b2" * 9, "A1b2A1b2A1b2"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "11ABCDEFG0123456789"),
    ("glpat-xYz12345678901234567", "xYz12345678901234567"),
    ("gldt-AbC12345678901234567", "AbC12345678901234567"),
    ("xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "AbCdEfGhIjKlMnOpQr"),
    (
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "T00000000/B0000",
    ),
    ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc"),
    ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8I"),
    ("AIzaSyA-1234567890abcdefghijklmnopqrstu", "SyA-1234567890abcdef"),
    ("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", "1a2B3c4D5e6F7g8H9i0J"),
    ("sk-proj-" + "Ab3dEf6hIj9lMn2pQr5tUv8xYz1" * 2, "Ab3dEf6hIj9lMn2pQr5t"),
    ("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", "TwL2iGABf9DHoTf"),
    ("npm_" + "a1B2c3D4e5" * 3 + "F6g7H8", "a1B2c3D4e5a1B2c3D4e5"),
    ("hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh", "AbCdEfGhIjKlMnOpQrSt"),
    ("hvs.CAESIJ1aBcDeFgHiJkLmNoPqRsTuVwXyZ0123", "CAESIJ1aBcDeFgHiJkLm"),
    ("dapi0123456789abcdef0123456789abcdef", "0123456789abcdef0123"),
    ("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_", "AAHdqTcvCH1vGWJxfSe"),
    ("Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", "YWxhZGRpbjpvcGVuc2VzYW1l"),
    ("curl --header authorization=Token tk-5a6b7c8d9e", "tk-5a6b7c8d9e"),
    ('"Authorization": "Bearer 8f2b1c9e4a7d3f6b0e5c"', "8f2b1c9e4a7d3f6b0e5c"),
    ("curl -H 'x: 1' Bearer 0a9b8c7d6e5f4a3b2c1d0e9f", "0a9b8c7d6e5f4a3b2c1d0e9f"),
    ("ALTER USER bob IDENTIFIED BY 'Tr0ub4dor&3'", "Tr0ub4dor&3"),
    ('{"user": "ann", "password": "hunter2-json"}', "hunter2-json"),
    ('{"clientSecret": "cs-9f8e7d"}', "cs-9f8e7d"),
    ('{"accessToken": "at-1a2b3c"}', "at-1a2b3c"),
    ('{"userPassword": "up-4d5e6f"}', "up-4d5e6f"),
    ('{"DB_PASSWORD": "dbp-77aa"}', "dbp-77aa"),
    ('{"api-key": "ak-88bb"}', "ak-88bb"),
    ('{"password": 12345678}', "12345678"),
    ('{"active": true, "password": false}', "false"),
    ('{"pin": 1, "passcode": 987654321}', "987654321"),
    ('{"password": "a\\"b-escaped-q"}', "b-escaped-q"),
    ("host=db port=5432 user=app password=libpq-pw-1 dbname=x", "libpq-pw-1"),
    ("host=db password='libpq quoted pw' dbname=x", "libpq quoted pw"),
    ("Server=db;User Id=app;Pwd=ado-pw-2;Database=x", "ado-pw-2"),
    ("jdbc:mysql://db/x?user=app&password=jdbc-pw-3&ssl=true", "jdbc-pw-3"),
    ("DB_PASSWORD=env-pw-4", "env-pw-4"),
    ("database:\n  user: app\n  password: yaml pw 5\n", "yaml pw 5"),
    ('smtp:\n  password: "yaml-quoted-6"\n', "yaml-quoted-6"),
    ("X-Api-Key: hdr-key-7\n", "hdr-key-7"),
    ("<user>ann</user><password>xml-pw-8</password>", "xml-pw-8"),
    ('<login user="ann" password="xml-attr-9"/>', "xml-attr-9"),
    ("postgresql://bob:url-pw-10@db:5432/x", "url-pw-10"),
    ("redis://:empty-user-11@cache:6379/0", "empty-user-11"),
    ("mysql://bob:p@ss-at-12@db/x", "ss-at-12"),
]

# Ordinary values, each of which must come out unchanged.
LEFT_ALONE: list[str] = [
    "costs $20.00, or $2,500 for two",
    '{"compass": "north", "tokens": 5, "passenger": "Ann", "author": "Bo"}',
    "Author: Jane Doe; keyboard: US; monkey=1",
    "see http://example.com:8080/path and mailto:ann@example.com",
    "2024-01-01 12:00:00,3.14,true",
    "the secretary passed the ball",
    "md5 of the file: d41d8cd98f00b204e9800998ecf8427e",
    "*bold* and 0x2470C0C06DEE42FD",
    "Bearer bonds were sold",
    "ghp_short sk-short AKIA eyJ",
]
