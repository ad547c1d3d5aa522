#!/bin/sh
# Harness self-test: a failing guest script must map to run-vm exit code 1.
exit 3
