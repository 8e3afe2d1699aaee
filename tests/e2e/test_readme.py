"""Runs the README's AWS CLI quickstart exactly as written (only the endpoint and the credentials
file point at this test's server) and checks what it printed and left behind."""

import os
import re
import subprocess

from conftest import ACCESS_KEY, ROOT, SECRET_KEY


def quickstart():
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text.split("<!-- quickstart:begin -->", 1)[1].split("<!-- quickstart:end -->", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert blocks, "README quickstart has no bash block"
    return "\n".join(blocks)


def test_readme_quickstart_runs_as_written(server, lattice, tmp_path):
    script = quickstart()
    assert "http://127.0.0.1:9460" in script and "./trellis-data/credentials" in script
    cred = tmp_path / "credentials"
    cred.write_text(f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    script = script.replace("http://127.0.0.1:9460", server.endpoint).replace("./trellis-data/credentials", str(cred))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # -x echoes each command so a failure shows which line broke.
    p = subprocess.run(["bash", "-euxo", "pipefail", "-c", script], capture_output=True, text=True,
                       env=env, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-4000:]
    out = p.stdout
    assert "vpc-lattice-svcs.us-west-2.on.aws" in out          # the service's generated DNS name
    assert "parking" in out and "ACTIVE" in out                 # list-services table
    assert "to-instance" in out and "to-function" in out        # list-rules table
    assert "\n5\n" in out                                       # update-rule printed the new priority
    # Everything the quickstart created it also deleted.
    assert lattice.list_services()["items"] == [] or all(s["name"] != "parking" for s in lattice.list_services()["items"])
    assert all(sn["name"] != "launch-network" for sn in lattice.list_service_networks()["items"])
