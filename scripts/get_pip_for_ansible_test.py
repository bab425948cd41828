"""Stand-in for the get-pip.py that ansible-test downloads to bootstrap its venvs.

CI reaches only the package registries, not ci-files.testing.ansible.com, so this
script is placed in ansible-test's cache instead: the standard library's ensurepip
installs pip, then pip installs what ansible-test asked for, from the registry.
ansible-test runs pip with a filtered environment, so the machine's CA bundle (a
TLS-inspecting proxy signs the registry here) is written into the venv's pip.conf.
"""

import ensurepip
import os
import subprocess
import sys

BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

ensurepip.bootstrap()
# ensurepip points pip at no configuration for its own run; the rest of pip should
# see the machine's (and the venv's) configuration again.
for variable in ("PIP_CONFIG_FILE", "ENSUREPIP_OPTIONS"):
    os.environ.pop(variable, None)
if os.path.exists(BUNDLE):
    with open(os.path.join(sys.prefix, "pip.conf"), "w", encoding="utf-8") as config:
        config.write(f"[global]\ncert = {BUNDLE}\n")
options = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *options]))
