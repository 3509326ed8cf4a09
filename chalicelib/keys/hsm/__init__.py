"""HSM storage through PKCS#11 (python-pkcs11): SoftHSM2 locally, the AWS CloudHSM library in AWS.

- `session`: the module (loaded once per process), the process-wide lock, the one login per token,
  session loss and recovery after an outage, the refused-PIN memory, the label -> handle cache.
- `token`: key pairs on the token by label: generate, find, sign with, destroy, list.
- `mechanisms`: the table from (algorithm, padding, hash) to PKCS#11 mechanisms and parameters.
- `keys`: `cryptography` private-key classes whose `sign()` runs on the token.
- `store`: `HsmKeyStore`, the KeyBackend on top of them.
"""
