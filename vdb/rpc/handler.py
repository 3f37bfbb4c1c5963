"""The wrapper every servicer method goes through."""

import functools
import inspect


def rpc(write: bool = False, admin: bool = False):
    """Wrap a servicer method (of a servicer with a `core`): admission (API key, role,
    deadline), in-flight accounting, and exceptions turned into status codes. Works for unary
    and streaming responses. admin: the method needs an admin key when the server has keys."""

    def wrap(method):
        if inspect.isgeneratorfunction(method):

            @functools.wraps(method)
            def streaming(self, request, context):
                core = self.core
                core.enter()
                try:
                    core.admit(context, write, admin)
                    yield from method(self, request, context)
                except Exception as exc:
                    core.fail(context, exc)
                finally:
                    core.leave()

            return streaming

        @functools.wraps(method)
        def unary(self, request, context):
            core = self.core
            core.enter()
            try:
                core.admit(context, write, admin)
                return method(self, request, context)
            except Exception as exc:
                core.fail(context, exc)
            finally:
                core.leave()

        return unary

    return wrap
