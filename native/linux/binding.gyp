{
  "targets": [
    {
      "target_name": "pgwarden_linux",
      "sources": ["linux.cc"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
