# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every module that runs on an LB node shares: HAProxy's socket, where it runs."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  socket:
    description: HAProxy's stats socket (level admin).
    type: path
    default: /run/haproxy/admin.sock
attributes:
  platform:
    platforms: posix
requirements:
  - the C(breakwater) Python package where the module runs (on LB nodes, the
    watcher's venv C(/opt/breakwater/venv/bin/python))
"""
