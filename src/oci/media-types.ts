/** The media types and annotation keys images are read and written with (OCI image-spec, Docker distribution). */
export const MT = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

/** The tag an index entry stands for (OCI image layout). */
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
/** The full image name containerd (ctr import, K3s' airgap import) gives an index entry. */
export const ANNOTATION_CONTAINERD_NAME = 'io.containerd.image.name';
/** buildkit marks its provenance/SBOM index entries with this annotation (value `attestation-manifest`). */
export const ANNOTATION_DOCKER_REFERENCE_TYPE = 'vnd.docker.reference.type';
