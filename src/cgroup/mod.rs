//! cgroups: mode detection and one backend per version (filled in by the cgroup work).
