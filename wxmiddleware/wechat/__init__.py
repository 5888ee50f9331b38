"""WeChat API clients: pure protocol code plus thin sync and async I/O around it."""

from ._protocol import CodeSession
from .sync import WeChatClient

__all__ = ["CodeSession", "WeChatClient"]
