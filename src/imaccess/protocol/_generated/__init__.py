"""flatc output for schema/message.fbs; regenerate with scripts/gen_flatbuffers.sh."""
