{
  "targets": [
    {
      "target_name": "working_set",
      "sources": ["working-set.cc"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
