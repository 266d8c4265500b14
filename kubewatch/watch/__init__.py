"""Object dicts to Events: the watch plan, normalisation, Kubernetes Event alerts, the
namespace hold, object filters and the pipeline that ties them together."""
