"""The exceptions for problems a person can fix."""


class DigitlabError(Exception):
    """Something the user can fix: a bad path, an unknown name, a corrupt file.

    The CLI prints the message as one line and exits with code 2; the web API answers 4xx.
    The message says what is wrong and what to do.

    Examples
    --------
    >>> raise DigitlabError("unknown model 'lgoreg'; choose one of: logreg, svm")
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: unknown model 'lgoreg'; choose one of: logreg, svm
    """


class InvalidValueError(DigitlabError, ValueError):
    """A value that cannot be used: a parameter out of range, data of the wrong shape.

    Both a :class:`DigitlabError` (the CLI prints one line) and the ``ValueError`` that
    scikit-learn's estimator contract names for bad parameters and bad data.

    Examples
    --------
    >>> isinstance(InvalidValueError("epochs must be a positive integer, got 0"), ValueError)
    True
    """
