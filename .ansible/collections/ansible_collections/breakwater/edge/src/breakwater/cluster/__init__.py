"""The cluster as the edge reads it from etcd: the API server's key layout, the object
index, the state kept while following, and one full read -- no daemon needed."""
