"""The strict layer: the emulator chain refused what Google Cloud would refuse.

- :mod:`.identity`: credentials whose bearer token names a service account (``local-sa:<email>``);
- :mod:`.terraform_iam` and :mod:`.policy`: the IAM grants of ``terraform/*.tf`` (python-hcl2) and
  the permission lists of the predefined roles (``roles.json``), applied to the chain's resources
  (:class:`.resources.ResourceMap`);
- :mod:`.gateway`: an HTTP proxy in front of the GCS and BigQuery emulators that maps each request
  to the IAM permissions it needs, answers 401/403 as Google does, and enforces what the emulators
  skip (BigQuery job ids are unique: 409; GCS generation preconditions: 412, serialised per object);
- :mod:`.run_admin`: a local Cloud Run Admin API (``RunJob``) that starts the job as a process.

Every decision is appended to a JSONL audit log.
"""
