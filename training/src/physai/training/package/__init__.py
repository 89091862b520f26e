"""Package an exported policy as an OCI "model carrier" image: the model and nothing else.

    from physai.training.package import package_policy
    result = package_policy("exports/ppo-pendulum", "packages/ppo-pendulum",
                            name="policies/ppo-pendulum", version="1.0.0")
    result.manifest_digest                      # 'sha256:...', the same for the same inputs

Push it (ACR = myacr.azurecr.io/policies/ppo-pendulum:1.0.0):

    oras cp --from-oci-layout packages/ppo-pendulum:1.0.0 $ACR
    skopeo copy oci:packages/ppo-pendulum:1.0.0 docker://$ACR
    skopeo copy oci-archive:ppo-pendulum.tar:1.0.0 docker://$ACR      # the tar=True form

What is written (an OCI image layout, image-spec 1.1; `tar=True` writes the same as one tar file,
an `oci-archive:`):

    oci-layout                 {"imageLayoutVersion": "1.0.0"}
    index.json                 one manifest descriptor: platform, ref.name = the tag
    blobs/sha256/<manifest>    image manifest v1: config + one layer, annotations = the labels
    blobs/sha256/<config>      image config v1: linux/amd64 (or `platform`), rootfs.diff_ids,
                               config.Labels (title, version, created, per-format sha256 ...)
    blobs/sha256/<layer>       tar+gzip (or tar): policy/, policy/policy.json and every file the
                               card lists, at the card's relative paths

The image is FROM scratch: mount it as a Kubernetes image volume, `COPY --from=` it in a
Dockerfile (training/docker/inference.Dockerfile), or pull it with `oras`. It has no shell, so
it cannot itself run as an init container that copies files. Its platform is a label only
(the files run anywhere); container runtimes pull a single-manifest image on any architecture.

A layout folder also holds core's `.physai-published.json` commit marker (hidden; OCI tools
ignore files they do not know). There is no `manifest.json`, which `docker load` would read.
"""

from physai.training.package.carrier import (
    DEFAULT_PLATFORM,
    LABEL_PREFIX,
    POLICY_ROOT,
    PackageResult,
    package_policy,
)

__all__ = ["DEFAULT_PLATFORM", "LABEL_PREFIX", "POLICY_ROOT", "PackageResult", "package_policy"]
